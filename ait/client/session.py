"""ClientSession: a client UI's connection to one channel.

```python
async with ait.ClientSession(bus, "chat-42", client_id="alice") as client:
    active = await client.view.send("hi")
    async for text in active.text_stream():
        print(text, end="")
    client.view.messages               # the selected branch, newest window
```

On enter it reads the newest history (enough for the default view's window), then follows
the channel live from exactly the entry where that read ended, across Redis disconnects
(the subscription resumes from its last id: no gap, no duplicate). Every entry is folded
into `tree`; every view over it updates. Closing detaches: runs keep going on the agents.

Problems that belong to no call (a bad entry on the channel, a stream that was reset) go to
`on_error` and to `errors()`; the session keeps working.

A run whose agent died outside any worker would stay active forever: the session watches
the active runs' heartbeats and ends a run whose agent went silent for the bound with
`agent-lost` (`end_lost_runs`, `lost_after`; see `LostRunWatch`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Literal

import anyio

from .._constants import REFUSED_CHANNEL_RETRY
from ..bus import Bus, Subscription
from ..bus._tasks import BackgroundTasks
from ..conversation import FoldError, Tree, View
from ..errors import (
    AitError,
    AnswerRefused,
    BusError,
    CodecError,
    ContinuityLost,
    InvokeFailed,
    SubscriberLagged,
    UsageError,
)
from ..events import (
    BadEntry,
    Cancel,
    Event,
    Input,
    Invocation,
    Output,
    RunEnd,
    RunResume,
    RunStart,
    RunSuspend,
)
from ..ids import MIN_ENTRY_ID, check_name, new_id
from .active import ActiveRun
from .lost import LostRunWatch
from .view import ClientView

__all__ = ["ClientSession", "Invoke", "SessionError"]

log = logging.getLogger("ait.client")

SessionError = FoldError | AitError
"""What `on_error` and `errors()` report: an entry that could not be folded, or an error."""

Invoke = Literal["pool"] | Callable[[Invocation], Awaitable[object]] | None
"""How a write wakes an agent: `"pool"` (queue the invocation for the session's pool), a
function (your HTTP doorbell, given the invocation), or None (you wake agents yourself)."""


class ClientSession:
    """A client's session on one channel. An async context manager; see the module docstring.

    Args:
        bus: an open bus.
        channel: the channel name.
        client_id: who this client is (on every input and cancel it publishes).
        pool: the worker pool writes are queued for (`default`).
        invoke: how writes wake agents (see `Invoke`).
        window: messages the default view shows at first.
        page_size: entries per history page read.
        on_error: called with each `SessionError`; logged when not given.
        invoke_timeout: seconds a write waits for an agent to be woken (the pool's
            enqueue, your doorbell) before it raises `InvokeFailed` (with a `TimeoutError`
            as its cause and the input's live `ActiveRun`); None waits as long as it takes.
        end_lost_runs: end (`agent-lost`) the runs shown active whose agent stopped
            heartbeating for the bound; one `run.end` however many clients notice.
        lost_after: the bound, in seconds; None: three of the run's agent's heartbeats
            and 2 s (the heartbeat its record carries; 10 s when it carries none).
    """

    def __init__(
        self,
        bus: Bus,
        channel: str,
        *,
        client_id: str,
        pool: str = "default",
        invoke: Invoke = "pool",
        window: int = 50,
        page_size: int = 200,
        on_error: Callable[[SessionError], None] | None = None,
        invoke_timeout: float | None = 10.0,
        end_lost_runs: bool = True,
        lost_after: float | None = None,
    ) -> None:
        if not client_id:
            raise UsageError("a client session needs a non-empty client_id")
        if window < 1:
            raise UsageError(f"a view's window must be at least 1 message, not {window}")
        if lost_after is not None and not lost_after > 0:
            raise UsageError(f"lost_after must be a positive number of seconds, not {lost_after}")
        self.bus = bus
        self.channel = bus.channel(check_name("channel", channel))
        self.client_id = client_id
        self.pool = pool
        self.invoke = invoke
        self.invoke_timeout = invoke_timeout
        self.window = window
        self.page_size = page_size
        self._on_error = on_error
        self.tree = Tree(on_error=self._report)
        #: The watch that ends lost runs (None with `end_lost_runs=False`).
        self.lost_runs = (
            LostRunWatch(
                self.channel,
                self.tree,
                client_id=client_id,
                lost_after=lost_after,
                report=self._report,
            )
            if end_lost_runs
            else None
        )
        self._view: ClientView | None = None
        self._views: list[View] = []
        self.tasks = BackgroundTasks()
        self._state = "unopened"
        self._sub: Subscription | None = None
        self._oldest: str | None = None
        # One older-history read at a time (views share the cursor `_oldest`), and a count
        # of the pages read, so a call that waited knows another one read for it.
        self._older_lock = anyio.Lock()
        self._older_pages = 0
        self._pending: dict[str, ActiveRun] = {}  # input event id -> waiting for its run
        # Run id -> the handles following it: one, or several when a resume took several
        # answers (parallel tool calls answered apart).
        self._by_run: dict[str, list[ActiveRun]] = {}
        self._errors: deque[SessionError] = deque(maxlen=1_000)
        self._error_count = 0
        self._error_wake = anyio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def view(self) -> ClientView:
        """The default view."""
        if self._view is None:
            raise UsageError("the session is not open yet (use `async with`)")
        return self._view

    def create_view(self, *, window: int | None = None) -> ClientView:
        """Another view: its own branch selection and pagination, showing `window` messages
        at first (the session's `window` when None; below 1 is a `UsageError`). Close it
        (`view.close()`) when done; the session closes the views left open when it closes."""
        if self._state != "open":
            raise UsageError(f"unable to create a view; the session is {self._state}")
        view = ClientView(self, self.tree, window=self.window if window is None else window)
        self._views.append(view)
        return view

    def forget_view(self, view: View) -> None:
        """Drop a closed view (its `close()` calls this)."""
        if view in self._views:
            self._views.remove(view)

    async def __aenter__(self) -> ClientSession:
        if self._state != "unopened":
            raise UsageError(f"unable to open the client session; it is {self._state}")
        self.bus.require_open("open a client session")
        await self.tasks.enter()
        try:
            newest = await self._load_newest()
            self._sub = self.channel.subscribe(after=newest or MIN_ENTRY_ID)
            await self._sub.open()
        except BaseException:
            await self.tasks.exit()
            raise
        self._state = "open"
        self._view = ClientView(self, self.tree, window=self.window)
        self._views.append(self._view)
        self.tasks.start(self._follow, name=f"ait client {self.channel.name}")
        if self.lost_runs is not None:
            self.tasks.start(self.lost_runs.run, name=f"ait client lost runs {self.channel.name}")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.aclose()
        finally:
            await self.tasks.exit()

    async def aclose(self) -> None:
        """Stop following the channel. Runs go on; nothing is cancelled. Idempotent."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        following = [active for actives in self._by_run.values() for active in actives]
        for active in {*self._pending.values(), *following}:
            active.session_closed()
        for view in list(self._views):
            view.close()
        if self._sub is not None:
            with anyio.CancelScope(shield=True):
                await self._sub.aclose()
        self.tasks.stop()
        self._error_wake.set()

    # -- history ------------------------------------------------------------------------------

    async def _load_newest(self) -> str | None:
        """Fold the newest pages until the default view's window is full; return the newest
        entry id read (where the live subscription starts)."""
        newest: str | None = None
        counter = View(self.tree, window=self.window)
        try:
            while True:
                page = await self.channel.history(self._oldest, limit=self.page_size)
                if page:
                    newest = newest or page[-1][0]
                    self._oldest = page[0][0]
                    self.tree.apply(page)
                if len(page) < self.page_size:
                    self.tree.history_complete = True
                    return newest
                if self._window_full(counter):
                    return newest
        finally:
            counter.close()

    def _window_full(self, counter: View) -> bool:
        """True when the newest `window` + 1 messages are folded, the newest `window` of them
        from their first entry (a run's first message is whole once its `run.start` is)."""
        # The counter's window was fixed by the first page; show what older pages added.
        counter.reveal_older(len(self.tree))
        ids = counter.message_ids
        if len(ids) < self.window + 1:
            return False
        for message_id in ids[-self.window :]:
            run_id = self.tree.run_of(message_id)
            info = self.tree.run(run_id) if run_id is not None else None
            if info is not None and not info.started and info.message_ids[:1] == (message_id,):
                return False
        return True

    async def fetch_older(self, count: int) -> None:
        """Fold older history pages until new messages appear (the views' `load_older`).

        Calls are serialized: each reads from where the one before stopped. A call that
        waited while another read returns without reading; its view reveals what that one
        folded first, and calls again if it needs more.
        """
        pages = self._older_pages
        async with self._older_lock:
            if self._older_pages != pages:
                return
            await self._fetch_older()

    async def _fetch_older(self) -> None:
        if self.tree.history_complete or self._oldest is None:
            self.tree.history_complete = True
            return
        before = len(self.tree)
        for _ in range(50):
            page = await self.channel.history(self._oldest, limit=self.page_size)
            self._older_pages += 1
            if page:
                self._oldest = page[0][0]
                self.tree.apply(page)
            if len(page) < self.page_size:
                self.tree.history_complete = True
                return
            if len(self.tree) > before:
                return

    # -- following ----------------------------------------------------------------------------

    async def _follow(self) -> None:
        assert self._sub is not None
        while True:
            try:
                async for entry_id, event in self._sub:
                    self._fold(entry_id, event)
                return
            except SubscriberLagged:
                continue  # it catches up from its own cursor: nothing is lost
            except ContinuityLost as exc:
                self._report(exc)
                # The stream began again: what we folded is another history. Start over.
                self.tree.clear()
                self.tree.history_complete = True
                self._oldest = None
            except BusError as exc:
                # Redis refuses to read the channel (its key holds another type, an ACL):
                # say so, and try again; the subscription resumes from its cursor.
                self._report(exc)
                await anyio.sleep(REFUSED_CHANNEL_RETRY)

    def _fold(self, entry_id: str, event: Event | BadEntry) -> None:
        self.tree.apply_one(entry_id, event)
        if isinstance(event, Output):
            if self.tree.is_resend(entry_id, event):
                return  # an agent's resend of output already streamed: the tree skipped it
            for active in self._by_run.get(event.run_id, ()):
                active.output(event.message_id, event.payload)
        elif isinstance(event, Input):
            active = self._pending.get(event.event_id)
            if active is not None and event.run_id is not None:
                active.echoed = True  # an answer on the channel: the next lifecycle decides
        elif isinstance(event, RunStart | RunResume):
            taken = event.answers if isinstance(event, RunResume) else (event.input_event_id,)
            for event_id in taken:
                active = self._pending.pop(event_id, None)
                if active is not None:
                    self._by_run.setdefault(event.run_id, []).append(active)
                    active.started(event.run_id)
            if isinstance(event, RunResume):
                self._refuse_answers(event.run_id, "resumed by another answer")
            if self.lost_runs is not None:
                self.lost_runs.run_started()
        elif isinstance(event, RunEnd | RunSuspend):
            actives = self._by_run.pop(event.run_id, ())
            info = self.tree.run(event.run_id)
            if info is not None:
                for active in actives:
                    active.finished(info)
            if isinstance(event, RunEnd):
                why = "cancelled" if event.reason == "cancelled" else "ended"
                self._refuse_answers(event.run_id, why)

    def _refuse_answers(self, run_id: str, what: str) -> None:
        """Our answers to `run_id` on the channel before this resume or end were not
        taken, and never will be: an agent resumes a run once per suspend, and never an
        ended one. Their `ActiveRun`s fail instead of waiting forever."""
        refused = [
            (event_id, active)
            for event_id, active in self._pending.items()
            if active.known_run_id == run_id and active.echoed
        ]
        for event_id, active in refused:
            del self._pending[event_id]
            active.refused(AnswerRefused(run_id, what))

    # -- writing ------------------------------------------------------------------------------

    def require_open(self, action: str) -> None:
        """Raise `UsageError` unless the session is open (`action` says what was refused)."""
        if self._state != "open":
            raise UsageError(f"unable to {action}; the session is {self._state}")

    async def submit(self, event: Input, *, optimistic: bool, pool: str | None) -> ActiveRun:
        """Publish an input (folded at once if `optimistic`) and wake an agent for it."""
        self.require_open("send")
        self.channel.encode(event)  # too large, not encodable: refused before anything
        if optimistic:
            try:
                self.tree.add_optimistic(event)
            except ValueError as exc:
                raise CodecError(str(exc)) from None
        active = ActiveRun(self, event)
        self._pending[event.event_id] = active
        try:
            await self.channel.publish(event)
        except BaseException:
            self._pending.pop(event.event_id, None)
            if optimistic:
                self.tree.remove_optimistic(event.event_id)
            raise
        try:
            await self.wake_agent(active, pool)
        except Exception as exc:
            # The input is on the channel and the handle stays live: an agent woken later
            # (`await active.invoke()`) still answers it. Hand the handle over with the error.
            raise InvokeFailed(exc, active) from exc
        return active

    async def wake_agent(self, active: ActiveRun, pool: str | None = None) -> None:
        """Wake an agent for `active`'s input, as the session's `invoke` says.

        Raises:
            TimeoutError: it took longer than `invoke_timeout` (a hanging doorbell).
        """
        invoke = self.invoke
        with anyio.move_on_after(self.invoke_timeout) as waited:
            if invoke == "pool":
                await self.bus.pool(pool or self.pool).enqueue(active.to_invocation())
            elif callable(invoke):
                await invoke(active.to_invocation())
        if waited.cancelled_caught:
            raise TimeoutError(
                f"no agent was woken within {self.invoke_timeout:g} s (invoke_timeout): "
                "the doorbell did not answer"
            )

    async def publish(self, event: Cancel) -> str:
        self.require_open("publish")
        return await self.channel.publish(event)

    async def cancel(self, run_id: str) -> None:
        """Ask for run `run_id` to stop."""
        await self.publish(Cancel(event_id=new_id(), client_id=self.client_id, run_id=run_id))

    async def cancel_all(self) -> None:
        """Ask for every run this client started to stop."""
        await self.publish(Cancel(event_id=new_id(), client_id=self.client_id, scope="client"))

    # -- errors -------------------------------------------------------------------------------

    def _report(self, error: SessionError) -> None:
        self._errors.append(error)
        self._error_count += 1
        self._error_wake.set()
        self._error_wake = anyio.Event()
        if self._on_error is None:
            log.warning("ait client %s: %s", self.channel.name, error)
            return
        try:
            self._on_error(error)
        except Exception:
            log.exception("ait client: on_error failed")

    async def errors(self) -> AsyncIterator[SessionError]:
        """Session errors as they happen, starting with the last 1,000 (kept for a late
        reader); ends when the session closes."""
        position = self._error_count - len(self._errors)
        while True:
            first = self._error_count - len(self._errors)
            position = max(position, first)
            if position < self._error_count:
                yield self._errors[position - first]
                position += 1
                continue
            if self._state == "closed":
                return
            wake = self._error_wake
            await wake.wait()
