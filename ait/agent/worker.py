"""AgentWorker: serve a pool's invocation queue with a handler, and recover from crashes.

```python
async def answer(run: ait.Run) -> None:
    await run.start()
    messages = await run.load_conversation()
    result = await run.pipe(provider.stream(ChatRequest(messages=...)))
    await run.end(result.reason, error=result.error)

async with ait.Bus.from_url(url) as bus:
    await ait.AgentWorker(bus, answer, pool="default", concurrency=4).run()
```

- Up to `concurrency` handlers run at once; the worker reads only as many invocations as it
  has free slots, so the rest wait in Redis for other workers.
- While a handler runs, the worker renews its lease on the queue entry (XCLAIM resets the
  idle time) every third of `lease`. The entry is acknowledged when the handler returns:
  the run ended or suspended (a handler that returns with the run still open has it ended
  `complete`; one that raises has it ended `error`).
- Every worker also looks for entries idle longer than `lease` (their worker died) and
  takes them over: a run that never started is run now; a run that started and never
  ended is ended with `error`, code `agent-lost` (and, with `restart_lost=True`, answered
  again by a new run, also when a client noticed first and ended it `agent-lost`); a run
  that finished is just acknowledged.
- Every `trim_every` seconds the worker trims the queue: acknowledged entries are deleted,
  pending and not yet delivered ones kept (`Pool.trim`).
- `stop()` (or cancelling `run()`) stops taking work, lets in-flight handlers finish for up
  to `shutdown_timeout`, then cancels them; their runs end with code `agent-shutdown`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup

from ..bus import Bus, Channel, Pool
from ..bus.active import LOST_CODE, ActiveRuns, unpack_record
from ..errors import (
    AitError,
    AwaitingAnswers,
    BusError,
    InputNotFound,
    RunCancelled,
    RunConflict,
    RunRejected,
    UsageError,
)
from ..events import BadEntry, Invocation, RunEnd, RunStart
from ..ids import new_id
from .run import Run
from .session import AgentSession, input_claim_key

__all__ = ["AgentWorker", "Handler"]

log = logging.getLogger("ait.agent")

Handler = Callable[[Run], Awaitable[None]]

_END_GRACE = 5.0  # seconds stopped handlers get to end their runs before a forced cancel
_RENEW_RETRY = 0.5  # seconds between attempts to renew a lease while Redis is away


class AgentWorker:
    """Runs `handler` for every invocation of pool `pool`. See the module docstring.

    Args:
        bus: an open bus.
        handler: `async def handler(run)`: start, pipe, end (or suspend) the run.
        pool: the pool name (`default`).
        concurrency: handlers at once.
        lease: seconds an invocation may go without renewal before another worker
            considers this one dead and takes it over.
        restart_lost: answer again the input of a run whose worker died (a new run),
            after ending the lost one with `agent-lost`.
        shutdown_timeout: seconds in-flight handlers get to finish on `stop()`.
        consumer: this worker's name in the consumer group (host-pid-random by default).
        session_options: keyword arguments for each run's `AgentSession`.
        on_error: called with errors of handlers and of the worker itself; logged by default.
        block_ms: how long one read of the queue waits for new invocations, in milliseconds.
        trim_every: seconds between trims of the queue (the acknowledged invocations); None
            never trims.
    """

    def __init__(
        self,
        bus: Bus,
        handler: Handler,
        *,
        pool: str = "default",
        concurrency: int = 4,
        lease: float = 30.0,
        restart_lost: bool = False,
        shutdown_timeout: float = 30.0,
        consumer: str | None = None,
        session_options: dict[str, Any] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        block_ms: int = 2_000,
        trim_every: float | None = 60.0,
    ) -> None:
        if concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        if lease < 1:
            raise UsageError("lease must be at least 1 second")
        if trim_every is not None and not trim_every > 0:
            raise UsageError("trim_every must be a positive number of seconds, or None")
        self.bus = bus
        self.handler = handler
        self.pool: Pool = bus.pool(pool)
        self.concurrency = concurrency
        self.lease = lease
        self.restart_lost = restart_lost
        self.shutdown_timeout = shutdown_timeout
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{new_id()[:6]}"
        self.session_options = session_options or {}
        self._on_error = on_error
        self._block_ms = block_ms
        self.trim_every = trim_every
        self._busy = 0
        self._slot_freed = anyio.Event()
        self._stopping = anyio.Event()
        # Per handler: `stop` cancels the handler's own code (shutdown, a lost lease);
        # `guard` shields the handler task from the cancellation of `run()` so that its
        # session (and the run's writer) stays alive to end the run, and is cancelled only
        # as a last resort.
        self._stops: set[anyio.CancelScope] = set()
        self._guards: set[anyio.CancelScope] = set()
        #: Counters, for monitoring: invocations taken, runs recovered, handler failures,
        #: queue entries acknowledged and trimmed.
        self.stats = {
            "taken": 0,
            "reclaimed": 0,
            "lost_ended": 0,
            "failed": 0,
            "acked": 0,
            "trimmed": 0,
        }

    def report(self, error: BaseException) -> None:
        if self._on_error is None:
            log.warning("ait worker %s: %s", self.consumer, error)
            return
        try:
            self._on_error(error)
        except Exception:
            log.exception("ait worker: on_error failed")

    def stop(self) -> None:
        """Stop taking work; in-flight handlers get `shutdown_timeout` to finish."""
        self._stopping.set()

    @property
    def busy(self) -> int:
        """Handlers running now."""
        return self._busy

    async def run(self) -> None:
        """Serve until `stop()`; then let handlers finish (up to `shutdown_timeout`).

        Cancelling the task running this is a hard stop: handlers are cancelled at once,
        and their runs still end (`agent-shutdown`) before the cancellation propagates.
        """
        await self.pool.ensure_group()
        try:
            async with anyio.create_task_group() as handlers:
                try:
                    async with anyio.create_task_group() as intake:
                        intake.start_soon(self._serve, handlers)
                        intake.start_soon(self._reclaim_loop, handlers)
                        if self.trim_every is not None:
                            intake.start_soon(self._trim_loop, self.trim_every)
                        await self._stopping.wait()
                        intake.cancel_scope.cancel()
                finally:
                    with anyio.CancelScope(shield=True):
                        if self._stopping.is_set():  # graceful: handlers may finish
                            with anyio.move_on_after(self.shutdown_timeout):
                                await self._idle()
                        for stop in list(self._stops):
                            stop.cancel()  # their runs end `agent-shutdown`, entries acked
                        with anyio.move_on_after(_END_GRACE):
                            await self._idle()
                    for guard in list(self._guards):
                        guard.cancel()
                    handlers.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.pool.aclose()  # the queue reader's own connection

    async def _idle(self) -> None:
        while self._busy:
            self._slot_freed = anyio.Event()
            await self._slot_freed.wait()

    async def _serve(self, handlers: TaskGroup) -> None:
        while True:
            free = self.concurrency - self._busy
            if free <= 0:
                self._slot_freed = anyio.Event()
                await self._slot_freed.wait()
                continue
            try:
                taken = await self.pool.read(self.consumer, free, self._block_ms)
            except BusError as exc:
                self.report(exc)
                await anyio.sleep(1.0)
                continue
            for entry_id, invocation in taken:
                await self._dispatch(handlers, entry_id, invocation, reclaimed=False)

    async def _dispatch(
        self,
        handlers: TaskGroup,
        entry_id: str,
        invocation: Invocation | BadEntry,
        *,
        reclaimed: bool,
    ) -> None:
        if isinstance(invocation, BadEntry):
            self.report(AitError(f"bad invocation entry {entry_id}: {invocation.reason}"))
            await self._ack(entry_id)
            return
        self._busy += 1
        self.stats["reclaimed" if reclaimed else "taken"] += 1
        handlers.start_soon(
            self._handle, entry_id, invocation, reclaimed, name=f"ait run {entry_id}"
        )

    async def _handle(self, entry_id: str, invocation: Invocation, reclaimed: bool) -> None:
        guard, stop = anyio.CancelScope(shield=True), anyio.CancelScope()
        self._guards.add(guard)
        self._stops.add(stop)
        lost = False

        async def renew() -> None:
            nonlocal lost
            await self._renew(entry_id)  # returns when another worker took the entry
            lost = True
            stop.cancel()

        failed = False
        try:
            with guard:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(renew)
                    try:
                        # A reclaimed invocation whose run is settled is just acknowledged.
                        outcome = await self._recover(invocation) if reclaimed else "answer"
                        if outcome is not None:
                            await self._answer(invocation, stop, again=outcome == "again")
                    except BusError as exc:  # caught here: the task group would wrap it
                        failed = True
                        self.report(exc)  # unacknowledged: a worker reclaims it after the lease
                    finally:
                        tg.cancel_scope.cancel()
            if not (lost or failed or guard.cancel_called):
                await self._ack(entry_id)
        except BusError as exc:
            self.report(exc)  # the acknowledgement failed: the entry will be reclaimed
        finally:
            self._guards.discard(guard)
            self._stops.discard(stop)
            self._busy -= 1
            self._slot_freed.set()

    async def _answer(
        self, invocation: Invocation, stop: anyio.CancelScope, *, again: bool = False
    ) -> None:
        async with AgentSession(self.bus, invocation.channel, **self.session_options) as session:
            run = session.create_run(invocation)
            run.answer_again = again
            with stop:
                try:
                    await self.handler(run)
                except RunConflict as exc:
                    if isinstance(exc, AwaitingAnswers | RunCancelled) or exc.taken:  # all is well
                        log.debug("ait worker %s: %s", self.consumer, exc)
                    else:
                        self.report(exc)
                except (InputNotFound, RunRejected) as exc:
                    self.report(exc)
                except Exception as exc:
                    self.stats["failed"] += 1
                    self.report(exc)
                    if run.state == "started":
                        await run.end("error", error=exc)
                else:
                    if run.state == "started":
                        await run.end("complete")
            if run.state == "started":  # the worker stopped the handler
                await run.end("error", code="agent-shutdown", message="the agent stopped")

    async def _renew(self, entry_id: str) -> None:
        """Renew the lease of `entry_id` until another worker took it over, then return."""
        pause = self.lease / 3
        while True:
            await anyio.sleep(pause)
            try:
                held = await self.pool.renew(self.consumer, entry_id)
            except BusError as exc:
                self.report(exc)
                # Redis away: the run rides it out (`outage_bound`), and its lease must be
                # renewed as soon as Redis is back, before a worker takes it for dead.
                pause = min(self.lease / 3, _RENEW_RETRY)
                continue
            pause = self.lease / 3
            if entry_id not in held:
                self.report(AitError(f"lost the lease of {entry_id}: another worker took it"))
                return

    async def _ack(self, entry_id: str) -> None:
        with anyio.CancelScope(shield=True):
            await self.pool.ack(entry_id)
        self.stats["acked"] += 1

    # -- recovery ------------------------------------------------------------------------------

    async def _reclaim_loop(self, handlers: TaskGroup) -> None:
        interval = min(self.lease / 2, 5.0)
        while True:
            await anyio.sleep(interval)
            free = self.concurrency - self._busy
            if free <= 0:
                continue
            try:
                claimed = await self.pool.claim_idle(
                    self.consumer, int(self.lease * 1000), count=free
                )
            except BusError as exc:
                self.report(exc)
                continue
            for entry_id, invocation in claimed:
                await self._dispatch(handlers, entry_id, invocation, reclaimed=True)

    async def _trim_loop(self, every: float) -> None:
        """Trim the queue every `every` seconds; a failure is reported, never fatal.

        Its own loop, not part of the reclaim loop: that one skips its turn while every
        slot is busy, and a busy worker is the one whose queue grows.
        """
        while True:
            await anyio.sleep(every)
            try:
                self.stats["trimmed"] += await self.pool.trim()
            except Exception as exc:  # housekeeping: the worker serves on regardless
                self.report(exc)

    async def _recover(self, invocation: Invocation) -> Literal["answer", "again"] | None:
        """Settle an invocation whose worker died: "answer" when it should be answered now,
        "again" when its lost run was ended and `restart_lost` asks for a new one."""
        channel = self.bus.channel(invocation.channel)
        # The dead worker's claim on the input, if it died before its run.start: released,
        # or the input would stay unanswered until it lapsed.
        claim = input_claim_key(channel, invocation.input_event_id)
        active = ActiveRuns(channel)
        # The same end as anyone's who notices a lost run: one run.end, whoever is first.
        # A record refreshed between the read and the end (its worker is only slow): again.
        for _ in range(3):
            found = [
                (run_id, raw)
                for run_id, raw in (await active.records()).items()
                if unpack_record(raw).get("input-event-id") == invocation.input_event_id
            ]
            if not found:
                break
            for run_id, raw in found:
                message = "the agent answering this run stopped responding"
                if await active.end_lost(run_id, raw, message=message):
                    self.stats["lost_ended"] += 1
                    return "again" if self.restart_lost else None
        latest = await self._latest_run(channel, invocation)
        if latest is None:  # it never started: answer it now
            await self.bus.handle.client.delete(claim)
            return "answer"
        # Ended lost (a client noticed first): again, if asked; else it has its answer.
        return "again" if latest and self.restart_lost else None

    async def _latest_run(self, channel: Channel, invocation: Invocation) -> bool | None:
        """Whether the newest run for this input ended lost (`agent-lost`); None when no
        run for it started."""
        lost: set[str] = set()
        before: str | None = None
        scanned = 0
        while scanned < 20_000:
            page = await channel.history(before, limit=500)
            for _, event in reversed(page):
                if isinstance(event, RunEnd) and event.error_code == LOST_CODE:
                    lost.add(event.run_id)
                elif (
                    isinstance(event, RunStart)
                    and event.input_event_id == invocation.input_event_id
                ):
                    return event.run_id in lost
            scanned += len(page)
            if len(page) < 500:
                return None
            before = page[0][0]
        return None
