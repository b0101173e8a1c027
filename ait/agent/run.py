"""A run: one unit of agent work answering one input, with its lifecycle on the channel.

```python
run = session.create_run(invocation)
await run.start()                                 # finds the input, publishes run.start
messages = await run.load_conversation()          # the branch leading to the input
result = await run.pipe(provider.stream(request)) # output, racing a cancel
await run.end(result.reason, error=result.error)  # or: await run.suspend()
```

States: created -> started -> ended | suspended. Methods out of order raise `UsageError`;
`end` and `suspend` after either of them do nothing. A user's cancel (a `cancel` event on
the channel) makes `pipe` stop its stream within one item and return `cancelled`; task
cancellation (anyio/asyncio) always propagates unchanged. A run whose heartbeats stopped
reaching Redis for too long may be ended by another process as lost (`agent-lost`): the
run then ends here too (`lost`), and `pipe` stops with a `RunLost` error.

A run rides out an outage of Redis shorter than `outage_bound` (15 s by default): `pipe`
keeps reading the model while its writer sends again what Redis did not acknowledge, and
`end`/`suspend` wait for Redis as long. Every entry it may send twice carries a resend key,
so a copy of one that had landed folds away. Past the bound, `pipe` returns `error` with
`RedisUnavailable` (code `redis-unavailable`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from .._constants import PIPE_BACKLOG
from ..bus import CoalescingWriter
from ..codec.chat import ChatEncoder
from ..conversation import FoldError, Message, Tree
from ..conversation.runs import cancel_applies
from ..errors import (
    AitError,
    AwaitingAnswers,
    RedisUnavailable,
    RunCancelled,
    RunConflict,
    RunLost,
    UsageError,
    WriteFailed,
)
from ..events import (
    BadEntry,
    Cancel,
    Input,
    Invocation,
    RunEnd,
    RunEndReason,
    RunResume,
    RunStart,
)
from ..ids import entry_id_key, new_id
from .ending import RunEnding, RunState, close_writer
from .history import RunHistory, input_answered, resume_answers, since_suspend
from .multitask import make_way
from .results import CancelHook, CancelRequest, PipeResult, ToolCall, error_code

if TYPE_CHECKING:
    from .session import AgentSession

__all__ = ["Run"]


class Run(RunEnding):
    """One run. Create with `AgentSession.create_run`; see the module docstring."""

    def __init__(
        self,
        session: AgentSession,
        invocation: Invocation,
        *,
        on_cancel: CancelHook | None = None,
        invocation_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.session = session
        self.invocation = invocation
        #: Minted per wake-up; stamped on this invocation's lifecycle events.
        self.invocation_id = invocation_id or new_id()
        self.on_cancel = on_cancel
        self._requested_run_id = run_id
        #: The run id: minted by `start()`, or the suspended run's id for a continuation.
        self.run_id: str | None = None
        #: The input event (after `start()`), and its entry id.
        self.input: Input | None = None
        self.input_entry_id: str | None = None
        #: True when `start()` re-entered a suspended run (`run.resume`).
        self.resumed = False
        #: Answer the input even though a run for it started already: set by a worker's
        #: crash recovery (`restart_lost`), whose new run replaces a lost one.
        self.answer_again = False
        #: For a resumed run: the answers it took (tool results, approvals), in channel
        #: order; `input` is the first. Several when parallel calls were answered apart.
        self.answers: list[Input] = []
        self.state: RunState = "created"
        #: The cancel that was honoured, if any.
        self.cancel_request: CancelRequest | None = None
        self._cancelled = anyio.Event()
        #: True once another process ended this run as lost (see `ended_elsewhere`).
        self.lost = False
        # Set by an honoured cancel or a loss: what stops `pipe`.
        self._halted = anyio.Event()
        self._finishing = False  # our own run.end/run.suspend is on its way
        self._writer: CoalescingWriter | None = None
        self._last_message_id: str | None = None
        #: Message id -> the parent it was first published with; tool call id -> message.
        self._parents: dict[str, str] = {}
        self._calls: dict[str, str] = {}
        #: Tool calls of this invocation still open, and what they wait for ("result" or
        #: "approval"): what `suspend()` waits for unless told otherwise.
        self._open: dict[str, str] = {}
        self._started_at: int | None = None
        #: What cancels are matched against: the message id and client id of the input
        #: the run started for, and that input's entry id (set by `start()`).
        self._origin: tuple[str | None, str | None, str] | None = None
        #: Seconds this run rides out an outage of Redis (the session's `outage_bound`);
        #: set it before `start()`.
        self.outage_bound: float = session.outage_bound
        # The writer of this invocation, kept after `end()`/`suspend()` took it: the keys of
        # the lifecycle event come from its series.
        self._keys: CoalescingWriter | None = None
        # True once a lifecycle event waited out the bound in vain: later ones try once.
        self._gave_up = False

    def __repr__(self) -> str:
        return f"Run({self.run_id or '?'}, {self.state}, channel={self.invocation.channel!r})"

    # -- facts --------------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once a cancel for this run was accepted."""
        return self._cancelled.is_set()

    async def wait_cancelled(self) -> None:
        """Return when a cancel for this run is accepted."""
        await self._cancelled.wait()

    @property
    def anchor(self) -> str | None:
        """The message this run answers: the input, or for a regeneration the input's parent."""
        if self.input is None:
            return None
        if self.input.regenerate is not None:
            return self.input.parent
        return self.input.message_id

    @property
    def client_id(self) -> str | None:
        return self.input.client_id if self.input is not None else None

    def targeted_by(self, entry_id: str, cancel: Cancel) -> bool:
        """Whether `cancel` (at `entry_id`) asks to stop this run: `cancel_applies`, the
        rule every client's fold applies to mark `RunInfo.cancel_requested`."""
        if self._origin is None:
            return False  # not started: the cancel is held and offered again then
        message_id, client_id, input_entry = self._origin
        return cancel_applies(
            cancel,
            entry_id_key(entry_id),
            run_id=self.run_id,
            input_message_id=message_id,
            client_id=client_id,
            after=entry_id_key(input_entry),
        )

    def request_cancel(self, request: CancelRequest) -> None:
        """Mark the run cancelled (the session calls this once hooks allowed it)."""
        if self.state in ("ended", "suspended") or self._cancelled.is_set():
            return
        self.cancel_request = request
        self._cancelled.set()
        self._halted.set()

    def ended_elsewhere(self) -> None:
        """A `run.end` of this run that it did not publish reached the session: another
        process took its agent for dead (its heartbeats stopped for longer than the bound)
        and ended it `agent-lost`. Every client shows it ended, so the run stops here too:
        `pipe` returns within one item with a `RunLost` error, later writes raise
        `UsageError`, `end()` and `suspend()` do nothing."""
        if self.state != "started" or self._finishing:
            return
        self.state = "ended"
        self.lost = True
        self._halted.set()
        self.session.release(self)
        writer, self._writer = self._writer, None
        if writer is not None:
            self.session.tasks.start(close_writer, writer, name="ait writer of a lost run")

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Find the input, claim it, take the run id, apply the multitask policy, publish
        the start.

        Of several agents woken for one fresh input, one answers it (a claim keyed by the
        input's event id) and the others get `RunConflict` with `taken`.

        For an input that continues a suspended run (a tool result, an approval), the run
        takes that run's id and publishes `run.resume`; of several agents woken for it,
        one resumes it and the others get `RunConflict`. A run suspended awaiting several
        tool calls is resumed only once each has an answer (`AwaitingAnswers` until then),
        taking all of them (`answers`).

        Raises:
            InputNotFound: the input did not show up in time; nothing was published.
            RunRejected: the input asked `reject` and another run is active; the run was
                started and ended with an error `rejected` for the client to see.
            RunConflict: another agent answers the input already (`taken`: a duplicate
                invocation), or the input continues a run that is not suspended (active,
                ended, or unknown); nothing was published.
            AwaitingAnswers: the input answers a suspended run, which still waits for
                answers to other calls; nothing was published.
            RunCancelled: the input answers a suspended run that a cancel asked to stop:
                the run was ended `cancelled` instead of resumed.
            UsageError: the run was already started.
        """
        if self.state != "created":
            raise UsageError(f"unable to start; the run is {self.state}")
        session = self.session
        entry_id, event = await session.find_input(
            self.invocation.input_event_id, queued_at=self.invocation.enqueued_at
        )
        if event.run_id is not None:
            await self._resume(entry_id, event, event.run_id)
        else:
            await self._claim_input(entry_id, event)
            try:
                # Cancels sent since the input are held before the run adopts them.
                await session.catch_up(since=entry_id)
                self.input, self.input_entry_id = event, entry_id
                self._origin = (event.message_id, event.client_id, entry_id)
                session.adopt(self)
                commands = await make_way(session, self, event.multitask or "parallel")
                lifecycle = RunStart(
                    **self._headers(event),
                    parent=self.anchor,
                    fork_of=event.fork_of,
                    regenerate=event.regenerate,
                )
                commands += [self._active_set(), session.settle_input_claim(event.event_id)]
                await session.channel.publish_many([lifecycle], with_commands=commands)
            except BaseException:
                if self.state == "created":  # not rejected (that ended it, claim and all)
                    await session.give_back_input_claim(self, event.event_id)
                raise
        self.state = "started"
        self._writer = self._keys = session.channel.writer(retry_for=self.outage_bound)
        self._writer.start_in(session.tasks)

    async def _claim_input(self, entry_id: str, event: Input) -> None:
        """Take the once-only claim on a fresh input, as a resume claims its run: of
        several agents woken for one input (a doorbell retried), one answers it and the
        others get `RunConflict` (`taken`: the input is answered; nothing is wrong)."""
        session = self.session
        self.run_id = self._requested_run_id or new_id()
        holder = await session.claim_input(self, event.event_id)
        answered = (holder, "active") if holder is not None else None
        if answered is None and not self.answer_again:
            # The claim only lives until a run.start: read the channel for one.
            try:
                answered = await input_answered(session.channel, entry_id, event.event_id)
            except BaseException:
                await session.give_back_input_claim(self, event.event_id)
                session.release(self)
                raise
            if answered is not None:
                await session.give_back_input_claim(self, event.event_id)
        if answered is not None:
            session.release(self)
            self.run_id = None
            run_id, state = answered
            raise RunConflict(
                run_id,
                state,
                taken=True,
                message=f"input {event.event_id!r} is answered already, by run {run_id!r} "
                f"({state})",
            )

    def _headers(self, answered: Input) -> dict[str, Any]:
        assert self.run_id is not None
        return {
            "run_id": self.run_id,
            "invocation_id": self.invocation_id,
            "input_event_id": answered.event_id,
            "input_message_id": answered.message_id,
            "run_client_id": answered.client_id,
        }

    async def _resume(self, entry_id: str, event: Input, run_id: str) -> None:
        """`start()` for an input that answers suspended run `run_id`: claim the run, then
        publish `run.resume`, or `run.end` (`cancelled`) if a cancel asked to stop it."""
        session = self.session
        history = await session.run_history(run_id)
        if history.state != "suspended":
            session.release(self)  # it will never run: no cancel is routed to it
            raise RunConflict(run_id, history.state, taken=event.event_id in history.taken)
        suspended_at = history.state_id
        assert suspended_at is not None
        if history.awaiting:
            # Only the invocation that brings the last awaited answer resumes it. It sees
            # every answer: its own input is on the channel, after the others.
            since, answers = await since_suspend(session.channel, run_id, suspended_at)
            if since.state is not None:
                session.release(self)
                raise RunConflict(run_id, since.state, taken=event.event_id in since.taken)
            missing = resume_answers(answers, history.awaiting)[1]
            if missing:
                session.release(self)
                raise AwaitingAnswers(run_id, missing)
        self._parents, self._calls = dict(history.parents), dict(history.calls)
        self._last_message_id = history.messages[-1] if history.messages else None
        # Cancels sent since the suspend are held before the run judges them.
        await session.catch_up(since=suspended_at)
        self.input, self.input_entry_id = event, entry_id
        self.run_id = run_id
        start = history.start
        if start is not None and history.origin_id is not None:
            self._origin = (start.input_message_id, start.run_client_id, history.origin_id)
        else:  # its start is out of reach: only cancels since the suspend can be judged
            self._origin = (None, None, suspended_at)
        if not await session.claim_active(self):
            session.release(self)
            since = await self._others_move(run_id, suspended_at)
            raise RunConflict(run_id, since.state or "active", taken=event.event_id in since.taken)
        try:
            # Another agent may have resumed it and let go (ended or suspended it again)
            # since we read it suspended: then the claim went through, but is not ours.
            since, answers = await since_suspend(session.channel, run_id, suspended_at)
            if since.state is not None:
                raise RunConflict(run_id, since.state, taken=event.event_id in since.taken)
            taken = resume_answers(answers, ())[0] or [(entry_id, event)]
            # Answers raced (two clients, one call), or parallel calls were answered apart:
            # the run resumes with the first on the channel, whichever agent gets here
            # first, as every client's fold keeps the first answer to a call. A client
            # whose answer was not taken learns so from the run.resume.
            self.input_entry_id, self.input = taken[0]
            self.answers = [answer for _, answer in taken]
            honoured = await self._cancelled_while_suspended(history.cancels)
            if honoured or self.cancelled:  # (one routed meanwhile may have been allowed)
                # Nobody held the run when it was cancelled: end it now, as asked, in place
                # of the resume (the claim goes with it). The answers are not taken.
                end = RunEnd(run_id=run_id, invocation_id=self.invocation_id, reason="cancelled")
                await session.channel.publish_many([end], with_commands=[self._active_del()])
                self.state = "ended"
                raise RunCancelled(run_id)
            self.resumed = True
            session.adopt(self, offer_held=False)  # the held cancels were judged above
            listed = [answer.event_id for answer in self.answers] if len(taken) > 1 else None
            lifecycle = RunResume(
                **self._headers(self.input), payload=listed and {"answers": listed}
            )
            await session.channel.publish_many([lifecycle])
        except BaseException:
            session.release(self)
            if self.state != "ended":  # an end took the claim with it
                await self._unclaim()
            raise

    async def _others_move(self, run_id: str, suspended_at: str) -> RunHistory:
        """What the agent that holds run `run_id`'s claim did with it since its suspend.

        It resumes the run (with this answer among its own when both were on the channel)
        or ends it, but may not have published that yet: wait for it, up to the session's
        `input_timeout`, so that a duplicate of an answer the run takes is told `taken`.
        """
        session = self.session
        since = RunHistory()
        with anyio.move_on_after(session.input_timeout):
            while True:
                moved = session.lifecycle_moved()
                since = (await since_suspend(session.channel, run_id, suspended_at))[0]
                if since.state is not None:
                    break
                with anyio.move_on_after(1.0):  # also poll: the holder may have died
                    await moved.wait()
        return since

    async def _cancelled_while_suspended(self, read: list[tuple[str, Cancel]]) -> bool:
        """Judge the cancels that target this run, read with its history or held by the
        session, oldest first; honour the first its hook allows."""
        found = dict(read)
        found.update(self.session.held_cancels())
        for entry_id in sorted(found, key=entry_id_key):
            cancel = found[entry_id]
            if not self.targeted_by(entry_id, cancel):
                continue
            channel = self.session.channel.name
            request = CancelRequest(self.run_id, entry_id, cancel, channel, self.client_id)
            if await self.session.allows(self, request):
                self.request_cancel(request)
                return True
        return False

    async def _unclaim(self) -> None:
        """Give back a continuation's claim on the active hash, best effort."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                await self.session.unclaim_active(self)
            except AitError:  # Redis away: the record goes stale, and is dropped
                pass

    async def load_conversation(self, *, max_entries: int = 50_000) -> list[Message]:
        """The messages of the branch this run continues, oldest first, ready for a model.

        Reads the channel backward from its newest entry (in pages) and folds it with the
        same Tree the clients use, until the branch's first message is reached. Other
        branches (older edits, other regenerations) are left out. Once the run has
        messages of its own (piped, or from before a suspend), the branch runs through its
        newest one, tool results included.
        """
        if self.input is None or self.input_entry_id is None:
            raise UsageError("unable to load the conversation; start() the run first")
        undecodable: set[str] = set()  # the session's router reports those already

        def left_out(error: FoldError) -> None:
            if error.entry_id not in undecodable:
                self.session.report(
                    AitError(
                        f"entry {error.entry_id} of {self.session.channel.name!r} left out of "
                        f"the conversation of run {self.run_id}: {error.reason}"
                    )
                )

        tree = Tree(on_error=left_out)
        channel = self.session.channel
        # From the newest entry: what this run published since the input (a tool result,
        # an earlier message) belongs to its conversation too.
        before: str | None = None
        inclusive, read = False, 0
        while read < max_entries:
            page = await channel.history(before, limit=500, inclusive=inclusive)
            undecodable.update(entry_id for entry_id, e in page if isinstance(e, BadEntry))
            tree.apply(page)
            read += len(page)
            if len(page) < 500:
                tree.history_complete = True
                break
            before, inclusive = page[0][0], False
            target = self._conversation_target(tree)
            path = tree.path_to(target) if target else []
            if path and path[0].parent is None:
                break
        target = self._conversation_target(tree)
        return tree.path_to(target) if target is not None else []

    def _conversation_target(self, tree: Tree) -> str | None:
        if self._last_message_id is not None and tree.is_placed(self._last_message_id):
            return self._last_message_id
        return self.anchor

    async def pipe(
        self,
        stream: AsyncIterable[Any],
        *,
        role: str = "assistant",
        message_id: str | None = None,
    ) -> PipeResult:
        """Write a stream's items as one message of this run, until it ends or is cancelled.

        Items may be `str` (text), ChatCodec events (models or wire maps), or provider
        events. The message ends with a `finish` event telling how: `complete`,
        `cancelled` (partial output stays), or `error` (with an `error` event). Never
        calls `end()`.

        A new message follows the run's last message (the input, for the first). Give the
        `message_id` of one of the run's own messages to write more of it instead (after a
        tool result, say): it keeps its place in the tree.
        """
        writer = self._require_started("pipe")
        if message_id is not None and message_id in self._parents:
            parent: str | None = self._parents[message_id]  # more of a message of this run
        else:
            message_id = message_id or new_id()
            parent = self._last_message_id or self.anchor
            self._last_message_id = message_id
        assert self.run_id is not None and parent is not None
        self._parents.setdefault(message_id, parent)
        run_id = self.run_id
        encoder = ChatEncoder()
        count = 0
        finished = False
        error: BaseException | None = None
        calls: list[ToolCall] = []
        finish_reason: str | None = None
        usage: dict[str, int] | None = None

        # One handle per message: each delta is queued as it is, its Output built per entry.
        extend = writer.message(
            run_id=run_id, message_id=message_id, role=role, parent=parent
        ).extend

        def send(events: list[dict[str, Any]]) -> None:
            nonlocal finished, finish_reason, usage
            for event in events:
                kind = event["type"]
                if kind == "tool-input-available":
                    calls.append(ToolCall(event["id"], event.get("name", ""), event.get("input")))
                    self._calls[event["id"]] = message_id
                    self._open.setdefault(event["id"], "result")
                elif kind == "tool-approval-request":
                    self._open[event["id"]] = "approval"
                elif kind in ("tool-output-available", "tool-output-error"):
                    self._open.pop(event["id"], None)
                elif kind == "finish":
                    finished = True
                    finish_reason = event.get("finish_reason") or finish_reason
                elif kind == "usage":
                    usage = {k: v for k, v in event.items() if isinstance(v, int)}
            extend(events)

        async with anyio.create_task_group() as tg:

            async def stop_on_cancel() -> None:
                await self._halted.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(stop_on_cancel)
            try:
                if not self._halted.is_set():
                    async for item in stream:
                        events = encoder.encode(item)
                        if events:
                            count += 1
                            send(events)
                            if writer.backlog > PIPE_BACKLOG:
                                await writer.flush()  # Redis is away: hold the model back
                        if self._halted.is_set():
                            break
            except Exception as exc:  # the stream failed: a provider error, a bad item
                error = exc
            finally:
                # Ends the watcher. A user's cancel cancelled this group's own scope, which
                # the group absorbs; a cancellation of the task itself propagates unchanged.
                tg.cancel_scope.cancel()
        await _close_stream(stream)
        if self.lost:  # the run is over: no finish, nothing more written
            return PipeResult("error", message_id, RunLost(run_id), count, tool_calls=tuple(calls))

        if isinstance(error, RedisUnavailable):
            # Redis stayed away past the bound: the message ends where the channel has it,
            # and the run's end (`redis-unavailable`) tells why once Redis is back.
            return PipeResult("error", message_id, error, count, tuple(calls), finish_reason, usage)
        if error is not None:
            reason: RunEndReason = "error"
            text = str(error) or repr(error)
            send([{"type": "error", "code": error_code(error), "message": text},
                  {"type": "finish", "finish_reason": "error", "status": "error"}])  # fmt: skip
        elif self._cancelled.is_set():
            reason = "cancelled"
            send([{"type": "finish", "finish_reason": "cancelled", "status": "cancelled"}])
        else:
            reason = "complete"
            if not finished:
                send([{"type": "finish", "status": "complete"}])
        details: dict[str, Any] = {
            "tool_calls": tuple(calls),
            "finish_reason": finish_reason,
            "usage": usage,
        }
        try:
            await writer.flush()
        except WriteFailed as exc:
            return PipeResult("error", message_id, exc, count, **details)
        return PipeResult(reason, message_id, error, count, **details)


async def _close_stream(stream: AsyncIterable[Any]) -> None:
    """Close the stream (an async generator or a provider's iterator) so its producer stops."""
    aclose: Callable[[], Awaitable[object]] | None = getattr(stream, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                await aclose()
            except Exception:  # the stream's own cleanup failing must not fail the run
                pass
