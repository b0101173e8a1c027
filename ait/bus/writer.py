"""The coalescing writer: high-rate deltas in few entries, without adding latency when idle.

`send()` never waits. A background task writes:
- when idle, at once: one event, one XADD, one round trip of latency;
- while a write is in flight, whatever arrives gathers; when the write returns, the whole
  gathering goes out as the next write, in one round trip. Consecutive `Output` events of
  the same message merge into one entry whose payload is the concatenated list;
- when a write returns to find events already waiting (the producer outpaces Redis), the
  writer lingers a little longer (`linger`, default 2 ms, never above `max_wait`) so each
  entry carries more.

Order is kept. `flush()` waits for everything sent so far; `aclose()` flushes and stops.
A failed write surfaces on the next `send()`/`flush()` as `WriteFailed`, carrying the
events that were not written.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from .._constants import WRITER_LINGER, WRITER_MAX_WAIT
from ..errors import BusError, CodecError, EntryTooLarge, UsageError, WriteFailed
from ..events import Event, Output
from ._tasks import BackgroundTasks

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["CoalescingWriter"]

_MERGE_LIMIT = 1024  # events in one merged entry, well under the size limit for deltas


class CoalescingWriter:
    """Batches events of one channel into few entries. Get one with `channel.writer()`.

    ```python
    async with channel.writer() as out:
        for delta in deltas:
            out.send(delta)          # never blocks
        await out.flush()            # everything sent is on the stream
    ```

    Args:
        linger: extra gathering time under load, in seconds (default 0.002).
        max_wait: upper bound for `linger` (default 0.05). An event also waits for the
            write in flight when it arrives (one round trip, usually well under a
            millisecond); no setting shortens that without giving up order.
    """

    def __init__(
        self, channel: Channel, *, linger: float | None = None, max_wait: float | None = None
    ) -> None:
        self.channel = channel
        self.max_wait = WRITER_MAX_WAIT if max_wait is None else max_wait
        self.linger = min(WRITER_LINGER if linger is None else linger, self.max_wait)
        if self.linger < 0:
            raise UsageError("linger must not be negative")
        self._pending: list[Event] = []
        self._sent = 0  # events accepted by send()
        self._done = 0  # events written, or handed back in a WriteFailed
        self._wake = anyio.Event()
        self._progress = anyio.Event()
        self._error: WriteFailed | None = None
        self._reject_cause: Exception = CodecError("event rejected")
        self._writing = False
        self._tasks = BackgroundTasks()
        self._scope: anyio.CancelScope | None = None
        self._state = "unopened"
        #: Entries written so far (each may hold many events).
        self.entries_written = 0

    async def __aenter__(self) -> CoalescingWriter:
        if self._state != "unopened":
            raise UsageError(f"unable to open the writer; it is {self._state} (make a new one)")
        await self._tasks.enter()
        self.start_in(self._tasks)
        return self

    def start_in(self, tasks: BackgroundTasks) -> None:
        """Open the writer with its task in `tasks` (owned by a longer-lived object), for
        callers whose open and close do not nest like `async with`. Close with `aclose()`."""
        if self._state != "unopened":
            raise UsageError(f"unable to open the writer; it is {self._state} (make a new one)")
        self._state = "open"
        self._scope = tasks.start(self._run, name=f"ait writer {self.channel.name}")

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.aclose()
        finally:
            await self._tasks.exit()  # not under any other scope: it must nest correctly

    def send(self, event: Event) -> None:
        """Queue `event` for writing. Never waits.

        Raises:
            WriteFailed: an earlier write failed (raised once; the writer goes on). The
                event given to this call was not queued: send it again if you want it.
            UsageError: the writer is not open.
        """
        if self._state != "open":
            raise UsageError(f"unable to send; the writer is {self._state}")
        self._raise_error()
        self._pending.append(event)
        self._sent += 1
        if not self._writing:
            self._wake.set()

    async def flush(self) -> None:
        """Wait until every event sent so far is written.

        Raises:
            WriteFailed: a write failed; its events are in the error's `unsent`.
        """
        target = self._sent
        while self._done < target:
            await self._progress.wait()
        self._raise_error()

    async def aclose(self) -> None:
        """Flush, then stop the background task. Idempotent.

        Raises:
            WriteFailed: the last writes failed.
        """
        if self._state != "open":
            self._state = "closed"
            return
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await self.flush()
        finally:
            self._state = "closed"
            if self._scope is not None:
                self._scope.cancel()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def _run(self) -> None:
        loaded = False
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._pending:
                self._writing = True
                if loaded and self.linger:
                    await anyio.sleep(self.linger)
                batch, self._pending = self._pending, []
                rejected: list[Event] = []
                try:
                    entries = self._encode(batch, rejected)
                    await self.channel.write_encoded(entries)
                    self.entries_written += len(entries)
                    if rejected:
                        self._error = WriteFailed(self._reject_cause, rejected)
                except BusError as exc:
                    unsent = batch + self._pending
                    self._pending = []
                    self._error = WriteFailed(exc, unsent)
                    batch = unsent
                finally:
                    self._writing = False
                self._done += len(batch)
                self._progress.set()
                self._progress = anyio.Event()
                loaded = bool(self._pending)

    def _encode(self, batch: list[Event], rejected: list[Event]) -> list[list[bytes]]:
        """Merge runs of same-message outputs, then encode each entry.

        An event that cannot be encoded on its own (too large, not msgpack-able) goes to
        `rejected`; the others are written.
        """
        entries: list[list[bytes]] = []
        run: list[Output] = []

        def close_run() -> None:
            if run:
                entries.extend(self._encode_outputs(run, rejected))
                run.clear()

        for event in batch:
            if isinstance(event, Output):
                if run and (not _same_message(run[0], event) or len(run) >= _MERGE_LIMIT):
                    close_run()
                run.append(event)
            else:
                close_run()
                entries.extend(self._encode_one(event, rejected))
        close_run()
        return entries

    def _encode_one(self, event: Event, rejected: list[Event]) -> list[list[bytes]]:
        try:
            return [self.channel.encode(event)]
        except (EntryTooLarge, CodecError) as exc:
            self._reject_cause = exc
            rejected.append(event)
            return []

    def _encode_outputs(self, outputs: list[Output], rejected: list[Event]) -> list[list[bytes]]:
        if len(outputs) == 1:
            return self._encode_one(outputs[0], rejected)
        payload = [item for output in outputs for item in output.payload]
        merged = outputs[0].model_copy(update={"payload": payload})
        try:
            return [self.channel.encode(merged)]
        except (EntryTooLarge, CodecError):
            half = len(outputs) // 2
            return self._encode_outputs(outputs[:half], rejected) + self._encode_outputs(
                outputs[half:], rejected
            )


def _same_message(a: Output, b: Output) -> bool:
    return (
        a.message_id == b.message_id
        and a.run_id == b.run_id
        and a.role == b.role
        and a.parent == b.parent
        and a.extra_headers == b.extra_headers
    )
