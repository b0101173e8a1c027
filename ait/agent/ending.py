"""How a run ends an invocation: its tool results, `run.end` or `run.suspend`, published
through an outage of Redis up to the run's `outage_bound`, and its active-run record.

`Run` (run.py) takes these from `RunEnding`; the attributes below are the run's own.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
import msgpack  # pyright: ignore[reportMissingTypeStubs]

from ..bus import CoalescingWriter
from ..errors import AitError, BusConnectionError, BusTimeoutError, UsageError
from ..events import Input, RunEnd, RunEndReason, RunResume, RunStart, RunSuspend
from .results import error_code

if TYPE_CHECKING:
    from .run import Run
    from .session import AgentSession

__all__ = ["RunEnding", "RunState", "close_writer"]

_pack: Callable[[Any], bytes] = msgpack.packb  # pyright: ignore
# Pauses between the attempts of a lifecycle event while Redis is away: doubling, jittered.
_RESEND_FIRST = 0.05
_RESEND_MAX = 1.0

RunState = Literal["created", "started", "suspended", "ended"]


class RunEnding:
    """The ending half of `Run`: tool results, `end`, `suspend`, the active-run record."""

    session: AgentSession
    run_id: str | None
    invocation_id: str
    input: Input | None
    state: RunState
    lost: bool
    outage_bound: float
    _writer: CoalescingWriter | None
    _keys: CoalescingWriter | None
    _finishing: bool
    _gave_up: bool
    _started_at: int | None
    _parents: dict[str, str]
    _calls: dict[str, str]
    _open: dict[str, str]

    @property
    def cancelled(self) -> bool:
        raise NotImplementedError

    async def tool_result(
        self, call_id: str, output: Any = None, *, error: str | None = None
    ) -> None:
        """Publish a tool call's result into the message that holds the call.

        For tools the agent runs itself; a client's result arrives as an input instead
        (`ClientView.send_tool_result`). With `error`, publishes `tool-output-error`.

        Raises:
            UsageError: the run is not started, or has no tool call `call_id`.
        """
        writer = self._require_started("publish a tool result")
        message_id = self._calls.get(call_id)
        if message_id is None:
            raise UsageError(f"run {self.run_id} has no tool call {call_id!r}")
        assert self.run_id is not None
        event: dict[str, Any]
        if error is not None:
            event = {"type": "tool-output-error", "id": call_id, "error": error}
        else:
            event = {"type": "tool-output-available", "id": call_id, "output": output}
        writer.message(
            run_id=self.run_id,
            message_id=message_id,
            role="assistant",
            parent=self._parents[message_id],
        ).extend([event])
        self._open.pop(call_id, None)
        await writer.flush()

    async def end(
        self,
        reason: RunEndReason = "complete",
        *,
        error: BaseException | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Publish `run.end`. With reason `error`, give `error` or `code`/`message`.

        Does nothing if the run already ended or suspended.
        """
        if self.state in ("ended", "suspended"):
            return
        if self.state != "started":
            raise UsageError("unable to end; the run is created (call start() first)")
        if reason == "error":
            code = code or (error_code(error) if error is not None else "error")
            message = message or (str(error) if error is not None else "") or "the run failed"
        else:
            code = message = None
        assert self.run_id is not None
        event = RunEnd(
            run_id=self.run_id,
            invocation_id=self.invocation_id,
            reason=reason,
            error_code=code,
            error_message=message,
        )
        await self._finish(event)
        self.state = "ended"

    async def suspend(self, *, awaiting: Iterable[str] | None = None) -> None:
        """Publish `run.suspend`: the run waits for a participant (a client-side tool result,
        an approval); a later invocation resumes it with the same run id.

        The run waits for an answer to each tool call in `awaiting` (ids), and resumes once
        all have one, however the clients send them (together or apart). By default it
        waits for the calls it asked for approval of in this invocation, or if none, for
        every call it made in this invocation without publishing its result. Give the ids
        yourself when that is not right (a call you will run after resuming, say); with
        `awaiting=()` the first answer resumes the run.

        Does nothing if the run already ended or suspended.
        """
        if self.state in ("ended", "suspended"):
            return
        if self.state != "started":
            raise UsageError("unable to suspend; the run is created (call start() first)")
        if self.cancelled:
            # A cancel was honoured: a suspend would let the next answer go on with what
            # the user asked to stop. The run ends as asked instead.
            await self.end("cancelled")
            return
        assert self.run_id is not None
        if awaiting is None:
            approvals = [cid for cid, wants in self._open.items() if wants == "approval"]
            waits = approvals or list(self._open)
        elif isinstance(awaiting, str):
            raise UsageError("awaiting is a list of tool call ids, not one string")
        else:
            given: list[object] = list(dict.fromkeys(awaiting))
            if not all(isinstance(cid, str) and cid for cid in given):
                raise UsageError(f"awaiting holds tool call ids (non-empty strings): {given!r}")
            waits = cast(list[str], given)
        payload = {"awaiting": waits} if waits else None
        await self._finish(
            RunSuspend(run_id=self.run_id, invocation_id=self.invocation_id, payload=payload)
        )
        self.state = "suspended"

    async def _finish(self, event: RunEnd | RunSuspend) -> None:
        # If the publish fails (Redis down past the bound), the run stays started without a
        # writer: `end()`/`suspend()` may be called again to retry it.
        writer, self._writer = self._writer, None
        self._finishing = True
        key = self._keys.next_key() if self._keys is not None else None
        if key is not None:
            event = event.model_copy(update={"entry_key": key})
        try:
            if writer is not None:
                with anyio.CancelScope(shield=True):
                    await writer.aclose()
        finally:
            try:
                await self._publish_final(event)
            finally:
                self.session.release(cast("Run", self))

    async def _publish_final(self, event: RunEnd | RunSuspend) -> None:
        """Publish the lifecycle event that ends this invocation, waiting out an outage of
        Redis up to `outage_bound` (once in vain, later calls try once).

        Each attempt is shielded: the event goes out even while the caller is being
        cancelled. Before sending a keyed event again, the channel is searched for it: the
        attempt that failed may have landed.
        """
        channel, command = self.session.channel, self._active_del()
        bound = 0.0 if self._gave_up else self.outage_bound
        since: float | None = None
        pause = _RESEND_FIRST
        while True:
            try:
                with anyio.CancelScope(shield=True):
                    if since is None or not await self._landed(event):
                        await channel.publish_many([event], with_commands=[command])
                return
            except (BusConnectionError, BusTimeoutError) as exc:
                now = time.monotonic()
                since = now if since is None else since
                left = since + bound - now
                if left <= 0:
                    self._gave_up = bound > 0
                    raise
                self.session.report(exc)
            await anyio.sleep(min(pause * random.uniform(0.5, 1.0), left))
            pause = min(pause * 2, _RESEND_MAX)

    async def _landed(self, event: RunEnd | RunSuspend) -> bool:
        """Whether keyed `event` is on the channel: read back from the newest entry to this
        invocation's start or resume (at most 20,000 entries)."""
        if event.entry_key is None:
            return False
        channel, before = self.session.channel, None
        for _ in range(40):
            page = await channel.history(before, limit=500)
            for _, found in reversed(page):
                if getattr(found, "entry_key", None) == event.entry_key:
                    return True
                if (
                    isinstance(found, RunStart | RunResume)
                    and found.run_id == self.run_id
                    and found.invocation_id == self.invocation_id
                ):
                    return False
            if len(page) < 500:
                return False
            before = page[0][0]
        return False

    def _require_started(self, action: str) -> CoalescingWriter:
        if self.state != "started" or self._writer is None:
            hint = " (call start() first)" if self.state == "created" else ""
            hint = " (ended as lost by another process: agent-lost)" if self.lost else hint
            raise UsageError(f"unable to {action}; the run is {self.state}{hint}")
        return self._writer

    def _active_set(self) -> list[Any]:
        assert self.input is not None and self.run_id is not None
        if self._started_at is None:
            self._started_at = math.floor(time.time() * 1000)
        record = {
            "input-event-id": self.input.event_id,
            "input-message-id": self.input.message_id,
            "client-id": self.input.client_id,
            "invocation-id": self.invocation_id,
            "started-at": self._started_at,
            # Refreshed by the session while the run lives: a record that stops being
            # refreshed belongs to an agent that died outside any worker.
            "alive-at": math.floor(time.time() * 1000),
            # So that whoever watches the record knows when its silence means death.
            "heartbeat-ms": math.floor(self.session.heartbeat * 1000),
        }
        packed = _pack(record)
        return ["HSET", self.session.active_key, self.run_id, packed]

    def active_record(self) -> list[Any]:
        """The HSET command that (re)records this run in the channel's active hash."""
        return self._active_set()

    def _active_del(self) -> list[Any]:
        return ["HDEL", self.session.active_key, self.run_id]


async def close_writer(writer: CoalescingWriter) -> None:
    """Close a lost run's writer: what was queued goes out, behind the run's end."""
    try:
        await writer.aclose()
    except AitError:  # nothing more is owed to a run that is over
        pass
