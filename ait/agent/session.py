"""The agent's side of a channel: finds inputs for runs and routes cancels to them.

```python
async with ait.AgentSession(bus, "chat-42") as session:
    run = session.create_run(invocation)
    await run.start()
    ...
```

The session follows its channel from a rewind point (2 minutes back by default), so inputs
published before it started, and cancels sent while an agent restarts, are not lost. It
keeps recent inputs by event id (for `Run.start`) and recent cancels (a cancel that names an
input before the agent minted the run id is held and honoured when the run starts).

Other agents' runs count for the multitask policies through the channel's `active` hash
(`<prefix>{<channel>}:active`): every run adds itself when it starts or resumes and removes
itself when it ends or suspends, in the same transaction as the lifecycle event. A record
left unrefreshed past its bound belongs to a dead agent: the session ends that run
`agent-lost` (`ait.bus.active`). A `run.end` of one of this session's own runs that it did
not publish (it was taken for dead) ends the run here too (`Run.ended_elsewhere`).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from types import TracebackType
from typing import cast

import anyio

from .._constants import OUTAGE_BOUND, REFUSED_CHANNEL_RETRY
from ..bus import Bus, Subscription
from ..bus._tasks import BackgroundTasks
from ..errors import (
    AitError,
    BusError,
    ContinuityLost,
    InputNotFound,
    SubscriberLagged,
    UsageError,
)
from ..events import (
    BadEntry,
    Cancel,
    Event,
    Input,
    Invocation,
    RunEnd,
    RunResume,
    RunStart,
    RunSuspend,
)
from ..ids import check_name, entry_id_key, new_id
from .history import SCAN_ENTRIES, RunHistory, run_history
from .records import SessionRecords, input_claim_key
from .results import CancelHook, CancelRequest
from .run import Run

__all__ = ["AgentSession", "input_claim_key"]


log = logging.getLogger("ait.agent")

# What the replay of the rewind window leaves undecoded: `_handle` ignores them.
_NOT_REPLAYED = ("output", "run.start", "run.resume")
# How many cancels a session holds for runs yet to start, and how many inputs it knows.
_HELD = 1_000
_INPUTS = 10_000

# How far back start() looks for an input outside the rewind window: SCAN_ENTRIES entries,
# or (for a queued invocation) back to a minute before it was queued.
_SCAN_MARGIN_MS = 60_000


class AgentSession(SessionRecords):
    """An agent's connection to one channel. An async context manager.

    Args:
        bus: an open bus.
        channel: the channel name.
        rewind: seconds of history to replay on open (inputs and cancels sent just
            before), newest first, outputs left undecoded; a run's start waits only for
            the part from its input on.
        input_timeout: how long `Run.start` waits for its input to show up (seconds).
        on_cancel: decides whether a cancel is allowed (runs may have their own hook);
            may be async. By default every cancel is honoured.
        on_error: called with problems that belong to no run (bad entries, a lost stream,
            a failing hook); by default they are logged.
        interrupt_timeout: how long an `interrupt` input waits for the runs it cancelled.
        enqueue_timeout: how long an `enqueue` input waits for active runs to end.
        agent_id: names this agent in the cancels it publishes (`interrupt`).
        heartbeat: seconds between refreshes of this session's runs in the channel's active
            hash; a run not refreshed for three heartbeats no longer counts as active.
        outage_bound: seconds a run rides out an outage of Redis (default 15): its pipe
            keeps reading the model and sends what was not written once Redis is back, and
            `end()`/`suspend()` wait for Redis as long. 0 gives up at the first failure.
    """

    def __init__(
        self,
        bus: Bus,
        channel: str,
        *,
        rewind: float = 120.0,
        input_timeout: float = 30.0,
        on_cancel: CancelHook | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        interrupt_timeout: float = 10.0,
        enqueue_timeout: float = 600.0,
        agent_id: str | None = None,
        heartbeat: float = 10.0,
        outage_bound: float = OUTAGE_BOUND,
    ) -> None:
        if not outage_bound >= 0:
            raise UsageError("outage_bound must be a number of seconds, 0 or more")
        self.bus = bus
        self.channel = bus.channel(check_name("channel", channel))
        self.active_key = self.channel.key_for("active")
        self.rewind = rewind
        self.input_timeout = input_timeout
        self.on_cancel = on_cancel
        self._on_error = on_error
        self.interrupt_timeout = interrupt_timeout
        self.enqueue_timeout = enqueue_timeout
        self.agent_id = agent_id or new_id()[:12]
        self.heartbeat = heartbeat
        self.outage_bound = outage_bound
        self.tasks = BackgroundTasks()
        self._state = "unopened"
        self._sub: Subscription | None = None
        self._inputs: OrderedDict[str, tuple[str, Input]] = OrderedDict()
        self._input_waiters: dict[str, anyio.Event] = {}
        self._held: deque[tuple[str, Cancel]] = deque(maxlen=_HELD)
        self._runs: set[Run] = set()
        self._by_run_id: dict[str, Run] = {}
        self._ended: dict[str, anyio.Event] = {}
        # Set (and replaced) after each routed entry while a run waits to catch up.
        self._routed = anyio.Event()
        self._catching_up = 0
        # The rewind window (the entries before the live subscription) is replayed newest
        # first: every entry from `_replayed_to` on has been handled (set on open);
        # `_replay_moved` is set (and replaced) as it moves back.
        self._replayed_to: tuple[int, int] = (0, 0)
        self._replay_moved = anyio.Event()
        # Set (and replaced) on every lifecycle event routed.
        self._lifecycle = anyio.Event()
        # Claims on fresh inputs held by runs waiting to start: key -> run id.
        self._input_claims: dict[str, str] = {}
        # `enqueue` inputs not known to have started: event id -> entry id.
        self._enqueued: OrderedDict[str, str] = OrderedDict()

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> AgentSession:
        if self._state != "unopened":
            raise UsageError(f"unable to open the agent session; it is {self._state}")
        self.bus.require_open("open an agent session")
        await self.tasks.enter()
        try:
            # Live from the newest entry; the rewind window before it is replayed apart,
            # reading only the inputs, cancels and lifecycle ends (not every output).
            start = f"{max(int((time.time() - self.rewind) * 1000), 0)}-0"
            tail = await self.channel.last_id()
            if tail is None or entry_id_key(tail) < entry_id_key(start):
                tail = None
                self._replayed_to = (0, 0)
            else:  # what follows the tail is the live subscription's
                ms, seq = entry_id_key(tail)
                self._replayed_to = (ms, seq + 1)
            self._sub = self.channel.subscribe(after=tail or start, strict=False)
            await self._sub.open()
        except BaseException:
            await self.tasks.exit()
            raise
        self._state = "open"
        if tail is not None:
            self.tasks.start(
                self._replay, start, tail, name=f"ait agent replay {self.channel.name}"
            )
        self.tasks.start(self._route, name=f"ait agent session {self.channel.name}")
        self.tasks.start(self._heartbeat, name=f"ait agent heartbeat {self.channel.name}")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.aclose()
        finally:
            await self.tasks.exit()

    async def aclose(self) -> None:
        """End runs still open (`error`, code `agent-stopped`), stop following. Idempotent."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            for run in list(self._runs):
                if run.state == "started":
                    try:
                        await run.end("error", code="agent-stopped", message="the agent stopped")
                    except AitError as exc:
                        self.report(exc)
            if self._sub is not None:
                await self._sub.aclose()
        self.tasks.stop()

    def create_run(
        self,
        invocation: Invocation,
        *,
        on_cancel: CancelHook | None = None,
        run_id: str | None = None,
        invocation_id: str | None = None,
    ) -> Run:
        """A run for `invocation`, registered for cancel routing at once (no I/O yet).

        Args:
            on_cancel: this run's cancel hook (else the session's).
            run_id, invocation_id: fixed ids instead of minted ones (tests, replays).
        """
        if self._state != "open":
            raise UsageError(f"unable to create a run; the agent session is {self._state}")
        if invocation.channel != self.channel.name:
            raise UsageError(
                f"invocation is for channel {invocation.channel!r}, "
                f"this session follows {self.channel.name!r}"
            )
        run = Run(self, invocation, on_cancel=on_cancel, run_id=run_id, invocation_id=invocation_id)
        self._runs.add(run)
        return run

    def report(self, error: BaseException) -> None:
        if self._on_error is None:
            log.warning("ait agent session %s: %s", self.channel.name, error)
            return
        try:
            self._on_error(error)
        except Exception:
            log.exception("ait agent session: on_error failed")

    # -- following the channel ----------------------------------------------------------------

    async def _route(self) -> None:
        assert self._sub is not None
        while True:
            try:
                async for entry_id, event in self._sub:
                    self._handle(entry_id, event)
                    if self._catching_up:
                        self._routed.set()
                        self._routed = anyio.Event()
                return
            except SubscriberLagged:
                continue  # caught up from its cursor on the next read: nothing lost
            except ContinuityLost as exc:
                self.report(exc)
            except BusError as exc:  # Redis refuses to read the channel: retry from the cursor
                self.report(exc)
                await anyio.sleep(REFUSED_CHANNEL_RETRY)

    async def _replay(self, start: str, tail: str) -> None:
        """Handle the entries from `tail` (the last one before the live subscription) back
        to `start` that matter to an agent, newest first, moving `_replayed_to` back page
        by page: a run needs only the entries from its input on, which come first. Retries
        while Redis is away."""
        cursor = tail
        delay = 0.05
        page = 50  # a fresh input is among the newest entries: the first page is short
        done = False
        try:
            while not done:
                try:
                    entries, last = await self.channel.scan(
                        start, cursor, page, skip=_NOT_REPLAYED, reverse=True
                    )
                except BusError as exc:
                    self.report(exc)
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                page = min(page * 4, 200)  # short pages: no long stall of the event loop
                for entry_id, event in entries:
                    self._handle(entry_id, event, replayed=True)
                done = last is None or entry_id_key(last) <= entry_id_key(start)
                self._replayed_to = (0, 0) if done else entry_id_key(cast(str, last))
                self._replay_moved.set()
                self._replay_moved = anyio.Event()
                cursor = f"({last}"
        except Exception as exc:  # a bug, not Redis: report it, and let no run wait on it
            self.report(AitError(f"the replay of {self.channel.name!r} stopped: {exc!r}"))
            self._replayed_to = (0, 0)
            self._replay_moved.set()

    def _handle(self, entry_id: str, event: Event | BadEntry, *, replayed: bool = False) -> None:
        """Route one entry. A `replayed` one comes newest first, from before every live one:
        it goes behind what is held, and is dropped rather than push a newer one out."""
        if isinstance(event, Input):
            self._remember_input(entry_id, event, oldest=replayed)
        elif isinstance(event, Cancel):
            if not replayed:
                self._held.append((entry_id, event))
            elif len(self._held) < _HELD:
                self._held.appendleft((entry_id, event))
            for run in list(self._runs):
                self._offer_cancel(run, entry_id, event)
        elif isinstance(event, RunStart | RunResume | RunEnd | RunSuspend):
            if isinstance(event, RunStart):
                self._enqueued.pop(event.input_event_id, None)
            elif isinstance(event, RunEnd | RunSuspend):
                ended = self._ended.pop(event.run_id, None)
                if ended is not None:
                    ended.set()
                run = self._by_run_id.get(event.run_id)
                if run is not None and isinstance(event, RunEnd) and not replayed:
                    run.ended_elsewhere()  # unless it is the run's own end, on its way
            self._lifecycle.set()
            self._lifecycle = anyio.Event()
        elif isinstance(event, BadEntry):
            self.report(
                AitError(f"bad entry {event.entry_id} on {self.channel.name!r}: {event.reason}")
            )

    def _remember_input(self, entry_id: str, event: Input, *, oldest: bool = False) -> None:
        if event.multitask == "enqueue" and event.run_id is None:
            self._enqueued[event.event_id] = entry_id
            while len(self._enqueued) > _HELD:
                self._enqueued.popitem(last=False)
        if oldest:
            if len(self._inputs) >= _INPUTS or event.event_id in self._inputs:
                return
            self._inputs[event.event_id] = (entry_id, event)
            self._inputs.move_to_end(event.event_id, last=False)
        else:
            self._inputs[event.event_id] = (entry_id, event)
            while len(self._inputs) > _INPUTS:
                self._inputs.popitem(last=False)
        waiter = self._input_waiters.get(event.event_id)
        if waiter is not None:
            waiter.set()

    # -- for runs -----------------------------------------------------------------------------

    async def find_input(self, event_id: str, *, queued_at: int | None = None) -> tuple[str, Input]:
        """The input with this event id: seen live, replayed, found in recent history, or
        waited for up to `input_timeout`.

        Args:
            queued_at: when its invocation was queued (ms): the search of history stops a
                minute before (the input was published before it was queued).
        """
        waiter = self._input_waiters.setdefault(event_id, anyio.Event())
        try:
            found = self._inputs.get(event_id)
            deadline = anyio.current_time() + self.input_timeout
            with anyio.move_on_after(self.input_timeout):
                # The replay reads the window newest first: a fresh input comes at once.
                while found is None and self._replayed_to > (0, 0):
                    await self._replay_moved.wait()
                    found = self._inputs.get(event_id)
            if found is None:
                found = await self._scan_for_input(event_id, queued_at)
            if found is None:
                with anyio.move_on_after(deadline - anyio.current_time()):
                    await waiter.wait()
                found = self._inputs.get(event_id)
            if found is None:
                raise InputNotFound(self.channel.name, event_id, self.input_timeout)
            return found
        finally:
            if self._input_waiters.get(event_id) is waiter:
                del self._input_waiters[event_id]

    async def catch_up(self, since: str | None = None) -> None:
        """Wait (up to `input_timeout`) until every entry from `since` (None: the start of
        the rewind window) to the newest one at this call has been handled, so that a run
        starting now is offered every cancel sent since its input: the session may still
        be replaying the rewind window (a session opened just now, as a worker opens one
        per invocation)."""
        last = await self.channel.last_id()
        if last is None or self._sub is None:
            return
        target = entry_id_key(last)
        floor = entry_id_key(since) if since is not None else (0, 0)
        sub = self._sub
        self._catching_up += 1
        try:
            with anyio.move_on_after(self.input_timeout):
                while self._replayed_to > floor:
                    await self._replay_moved.wait()
                while entry_id_key(sub.last_id) < target:
                    await self._routed.wait()
        finally:
            self._catching_up -= 1

    async def _scan_for_input(
        self, event_id: str, queued_at: int | None
    ) -> tuple[str, Input] | None:
        floor = queued_at - _SCAN_MARGIN_MS if queued_at is not None else None
        before: str | None = None
        scanned = 0
        while floor is not None or scanned < SCAN_ENTRIES:
            page = await self.channel.history(before, limit=500)
            for entry_id, event in reversed(page):
                if isinstance(event, Input) and event.event_id == event_id:
                    self._remember_input(entry_id, event)
                    return entry_id, event
            scanned += len(page)
            if len(page) < 500 or (floor is not None and entry_id_key(page[0][0])[0] < floor):
                return None
            before = page[0][0]
        return None

    def adopt(self, run: Run, *, offer_held: bool = True) -> None:
        """A run knows its input and id: route cancels by run id, honour held cancels
        (unless `offer_held` is false: the run judged them itself)."""
        assert run.run_id is not None
        self._by_run_id[run.run_id] = run
        if offer_held:
            for entry_id, cancel in list(self._held):
                self._offer_cancel(run, entry_id, cancel)

    def lifecycle_moved(self) -> anyio.Event:
        """An event set at the next lifecycle event (of any run) this session routes."""
        return self._lifecycle

    def enqueued_before(self, position: tuple[int, int]) -> dict[str, str]:
        """The `enqueue` inputs seen before entry `position`, not known to have started
        (event id -> entry id)."""
        return {
            event_id: entry_id
            for event_id, entry_id in self._enqueued.items()
            if entry_id_key(entry_id) < position
        }

    def forget_enqueued(self, event_id: str) -> None:
        """An `enqueue` input found started: never waited for again."""
        self._enqueued.pop(event_id, None)

    def held_cancels(self) -> list[tuple[str, Cancel]]:
        """The recent cancels this session has seen (replayed and live), oldest first."""
        return list(self._held)

    def release(self, run: Run) -> None:
        self._runs.discard(run)
        if run.run_id is not None and self._by_run_id.get(run.run_id) is run:
            del self._by_run_id[run.run_id]

    def _offer_cancel(self, run: Run, entry_id: str, cancel: Cancel) -> None:
        if run.state not in ("created", "started") or run.cancelled:
            return
        if run.targeted_by(entry_id, cancel):
            self.tasks.start(
                self._decide,
                run,
                CancelRequest(run.run_id, entry_id, cancel, self.channel.name, run.client_id),
                name="ait cancel",
            )

    async def _decide(self, run: Run, request: CancelRequest) -> None:
        if await self.allows(run, request):
            run.request_cancel(request)

    async def allows(self, run: Run, request: CancelRequest) -> bool:
        """Whether the run's `on_cancel` hook (else the session's) honours `request`."""
        hook = run.on_cancel or self.on_cancel
        if hook is None:
            return True
        try:
            verdict = hook(request)
            return bool(await verdict if inspect.isawaitable(verdict) else verdict)
        except Exception as exc:  # a broken hook refuses, and says so
            self.report(AitError(f"on_cancel hook failed, cancel refused: {exc!r}"))
            return False

    async def _heartbeat(self) -> None:
        """Refresh the active-hash records of this session's live runs, and the claims of
        its runs waiting to start."""
        while True:
            await anyio.sleep(self.heartbeat)
            live = [run for run in self._runs if run.state == "started"]
            try:
                if live:
                    await self.refresh_records(live)
                if self._input_claims:
                    await self._keep_input_claims()
            except Exception as exc:  # Redis away: the next beat tries again
                self.report(AitError(f"unable to refresh the active runs: {exc}"))

    async def wait_ended(self, run_id: str) -> None:
        """Return when this session routes the end (or suspend) of run `run_id`."""
        await self._ended.setdefault(run_id, anyio.Event()).wait()

    async def run_history(self, run_id: str) -> RunHistory:
        """What the channel says of a run: its state now, its messages, its tool calls.

        Reads recent history backward until the run's start (or 20,000 entries).
        """
        return await run_history(self.channel, run_id)
