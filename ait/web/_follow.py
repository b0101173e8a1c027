"""Following channels over SSE: one event per entry, the entry id as the cursor.

One channel (`GET /channels/{name}/events`): each SSE `id:` is the entry id; the browser's
`Last-Event-ID` (or `?after=`) resumes exactly after it. Several channels
(`GET /events?channel=a&channel=b`): each `id:` is the combined cursor `a@<id>,b@<id>`,
the position on every followed channel after this event, taken back the same way.

Every connection is a bus subscription, served by the bus's one shared reader. A client
that does not keep up (its subscription holds `buffer` entries unread) is disconnected; it
reconnects from its cursor and misses nothing. A stream reset or trimmed past the cursor
sends a `reset` event, with `id: 0-0` (or the channel at `0-0` in a combined cursor), and
follows the channel again from its oldest entry: the browser drops what it folded of it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream
from sse_starlette import ServerSentEvent

from ..bus import Bus, Subscription
from ..errors import AitError, BusError, ContinuityLost, SubscriberLagged
from ..ids import MIN_ENTRY_ID, entry_id_problem
from ._shapes import HttpError, dumps, event_json

__all__ = ["follow", "parse_combined", "parse_cursor"]


def parse_cursor(value: str | None) -> str:
    """The entry id to follow after (`$`: from now on when there is none)."""
    if value is None or value == "":
        return "$"
    problem = entry_id_problem(value)
    if problem is not None:
        raise HttpError(400, "UsageError", f"bad cursor {value!r}: {problem}")
    return value


def parse_combined(value: str | None, channels: list[str]) -> dict[str, str]:
    """`a@<id>,b@<id>` into {channel: after}; channels it does not name start at `$`."""
    cursors = dict.fromkeys(channels, "$")
    if not value:
        return cursors
    for part in value.split(","):
        name, at, entry_id = part.strip().rpartition("@")
        if not at or name not in cursors:
            raise HttpError(
                400,
                "UsageError",
                f"bad cursor {part!r}: expected <channel>@<entry id> for a followed channel",
            )
        cursors[name] = parse_cursor(entry_id)
    return cursors


def _combined(cursors: dict[str, str]) -> str:
    return ",".join(f"{name}@{entry_id}" for name, entry_id in cursors.items())


Item = tuple[str, str | None, str, str | None]  # channel, entry id, data, SSE event name


async def _relay(sub: Subscription, name: str) -> AsyncGenerator[Item | None]:
    """One subscription as items, then None when the connection must end."""
    while True:
        try:
            async for entry_id, event in sub:
                yield (name, entry_id, dumps(event_json(name, entry_id, event)), None)
        except ContinuityLost as exc:
            yield (name, MIN_ENTRY_ID, dumps({"channel": name, "reason": str(exc)}), "reset")
        except SubscriberLagged:
            yield None
            return
        except BusError as exc:
            yield (name, None, _failure(name, exc), "error")
            yield None
            return


async def _pump(sub: Subscription, out: MemoryObjectSendStream[Item | None], name: str) -> None:
    async with aclosing(_relay(sub, name)) as items:
        async for item in items:
            await out.send(item)


async def follow(
    bus: Bus, cursors: dict[str, str], *, combined: bool, buffer: int
) -> AsyncIterator[ServerSentEvent]:
    """SSE events of the channels in `cursors` ({name: after}), until the client goes."""
    async with AsyncExitStack() as stack:
        subs: dict[str, Subscription] = {}
        for name, after in cursors.items():
            try:
                subs[name] = await stack.enter_async_context(
                    bus.channel(name).subscribe(after=after, buffer=buffer)
                )
            except AitError as exc:  # the response has started: say it in the stream
                yield ServerSentEvent(data=_failure(name, exc), event="error")
                return
        position = {name: sub.last_id for name, sub in subs.items()}
        if len(subs) == 1:
            # One channel: read it here. No task group lives across this generator's yields.
            ((name, sub),) = subs.items()
            items: AsyncIterator[Item | None] = await stack.enter_async_context(
                aclosing(_relay(sub, name))
            )
        else:
            send, receive = anyio.create_memory_object_stream[Item | None](0)
            stack.enter_context(send)
            stack.enter_context(receive)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.push_async_callback(_cancel, tg)
            for name, sub in subs.items():
                tg.start_soon(_pump, sub, send, name)
            items = receive
        async for item in items:
            if item is None:
                return
            name, entry_id, data, kind = item
            if entry_id is not None:
                position[name] = entry_id
            cursor = _combined(position) if combined else entry_id
            yield ServerSentEvent(data=data, id=cursor, event=kind)


def _failure(name: str, error: Exception) -> str:
    return dumps({"channel": name, "error": {"type": type(error).__name__, "message": str(error)}})


async def _cancel(tg: anyio.abc.TaskGroup) -> None:
    tg.cancel_scope.cancel()
