"""Background tasks owned by an async context manager, without cancelling its host.

A task group entered in `__aenter__` wraps the code of the `async with` block in the
group's cancel scope: cancelling that scope to stop the background would cancel the user's
code too, and exiting the group from `aclose()` called deep inside other scopes breaks
their nesting. So each background task runs under a cancel scope of its own, `stop()`
cancels those (any time, from anywhere), and the group itself is exited only in
`__aexit__`, where nesting is right. Background tasks must not raise: they report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

__all__ = ["BackgroundTasks"]


class BackgroundTasks:
    def __init__(self) -> None:
        self._tg: TaskGroup | None = None
        self._scopes: set[anyio.CancelScope] = set()
        self._stopped = False

    async def enter(self) -> None:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()

    def start(
        self, func: Callable[..., Awaitable[Any]], *args: Any, name: str
    ) -> anyio.CancelScope:
        """Run `func(*args)` in the background until it returns or `stop()` is called.

        Returns the task's own cancel scope: cancel it to stop just this task.
        """
        scope = anyio.CancelScope()
        if self._tg is None or self._stopped:
            scope.cancel()
            return scope
        self._scopes.add(scope)

        async def guarded() -> None:
            try:
                with scope:
                    await func(*args)
            finally:
                self._scopes.discard(scope)

        self._tg.start_soon(guarded, name=name)
        return scope

    def stop(self) -> None:
        """Cancel every background task. Synchronous and idempotent."""
        self._stopped = True
        for scope in list(self._scopes):
            scope.cancel()

    async def exit(self) -> None:
        """Stop, then wait for the tasks to end. Call from `__aexit__` only."""
        self.stop()
        tg, self._tg = self._tg, None
        if tg is not None:
            await tg.__aexit__(None, None, None)
