"""The Tree: every message of every branch of a channel, folded from its entries. Pure: no I/O.

```python
tree = Tree()
errors = tree.apply(entries)        # [(entry_id, event), ...]: a read, a page, a subscription
tree.message("m1").text             # a Message snapshot
tree.runs(); len(tree); list(tree)  # runs; messages (every branch, entry order)
view = View(tree)                   # what a UI renders: see view.py
```

Rules the fold keeps (each is tested):
- Idempotent: an entry id already applied is ignored, and so is an entry whose resend key
  (`k`, `event.entry_key`) an earlier entry carries: a writer's resend of an entry that
  had landed. Only the earliest entry of a key counts, in any arrival order (inputs are
  known by their event id instead). Any order gives the same tree: nodes
  are kept in maps and ordered by entry id; message content and run lifecycles are folded
  in entry-id order whatever the arrival order.
- Input nodes are keyed by message id; run nodes by run id. `run.start` is canonical for a
  run's place; outputs that come first are filed under the run and placed by their own
  `parent` until it comes. `run.resume` re-activates only a suspended run.
- An input made only of tool results or approvals amends the assistant message it names;
  an input with `regenerate` asks for a sibling run and is not a message itself.
- Optimistic inputs (published by this client, not yet echoed) sort after every echoed
  node in insertion order; the echo promotes them in place.
- A malformed entry is reported (`FoldError`) and skipped; the rest of a batch applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

from ..codec.chat import AMENDMENT_TYPES, wire_problem
from ..events import BadEntry, Cancel, Event, Input, Output, RunEnd, RunResume, RunStart, RunSuspend
from ..ids import entry_id_key
from .message import EntryKey, Message, MessageState
from .runs import RunInfo, RunNode, run_info, targets
from .structure import Structure

__all__ = ["FoldError", "Runs", "Tree", "TreeListener"]


@dataclass(frozen=True, slots=True)
class FoldError:
    """An entry the tree could not fold, and why. The rest of its batch was applied."""

    entry_id: str | None
    reason: str


class Runs(list[RunInfo]):
    """What `tree.runs` gives: a list of runs, oldest first, that `tree.runs()` calls."""

    def __call__(self) -> list[RunInfo]:
        return list(self)


class TreeListener(Protocol):
    def tree_changed(self, reshaped: bool, appended: list[str], messages: set[str]) -> None:
        """After each batch: whether the shape was rebuilt, which messages were appended at
        the end (when it was not), and whose content changed."""
        ...


class _Input:
    """An input entry: a message, an amendment of another message, or a regenerate request."""

    __slots__ = ("entry_id", "event", "key", "kind", "seq")

    def __init__(self, event: Input, key: EntryKey, entry_id: str | None, kind: str, seq: int):
        self.event = event
        self.key = key
        self.entry_id = entry_id
        self.kind = kind  # "message" | "amend" | "regenerate"
        self.seq = seq


class Tree:
    """The fold of one channel. See the module docstring for its rules.

    Args:
        on_error: called with each `FoldError` (also returned by `apply`).
    """

    def __init__(self, *, on_error: Callable[[FoldError], None] | None = None) -> None:
        self.on_error = on_error
        self._applied: set[str] = set()
        # Resend key -> the entry that counts for it (the earliest), and what it went into:
        # a message id (output), a run id (lifecycle) or "" (cancel).
        self._keyed: dict[str, tuple[EntryKey, str]] = {}
        self._inputs: dict[str, _Input] = {}  # message id -> input message node
        self._by_event: dict[str, _Input] = {}  # event id -> any input
        self._runs: dict[str, RunNode] = {}
        self._messages: dict[str, MessageState] = {}
        self._run_of_message: dict[str, str] = {}
        self._optimistic_seq = 0
        self._listeners: list[TreeListener] = []
        self._reshape = False
        self._growth: list[tuple[str, str, str]] = []  # (kind, run id, message id) to append
        self._changed: set[str] = set()
        self._cancels: list[tuple[EntryKey, Cancel]] = []
        #: Input message ids some input names in `fork-of` (they shape edit groups).
        self.fork_targets: set[str] = set()
        #: True once the oldest entry of the channel has been folded (set by the reader).
        self.history_complete = False
        #: Order and sibling groups, shared by every view.
        self.structure = Structure(self)

    # -- listening ---------------------------------------------------------------------------

    def add_listener(self, listener: TreeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: TreeListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self) -> None:
        reshape, growth, changed = self._reshape, self._growth, self._changed
        if not reshape and not growth and not changed:
            return
        self._reshape, self._growth, self._changed = False, [], set()
        appended: list[str] = []
        structure = self.structure
        for kind, run_id, message_id in growth if not reshape else ():
            if kind == "input":
                done = structure.append_input(message_id)
            elif kind == "start":
                done = structure.start_run(self._runs[run_id])
            else:
                done = structure.append_run_message(self._runs[run_id], message_id)
            if not done:
                reshape = True
                break
            if message_id:
                appended.append(message_id)
        if reshape:
            structure.rebuild()
            appended = []
        for listener in list(self._listeners):
            listener.tree_changed(reshape, appended, changed)

    # -- folding -----------------------------------------------------------------------------

    def apply(self, entries: Iterable[tuple[str, Event | BadEntry]]) -> list[FoldError]:
        """Fold a batch of entries; return (and report) the ones that could not be folded."""
        errors: list[FoldError] = []
        for entry_id, event in entries:
            error = self._apply(entry_id, event)
            if error is not None:
                errors.append(error)
        self._notify()
        for error in errors:
            self._report(error)
        return errors

    def apply_one(self, entry_id: str, event: Event | BadEntry) -> FoldError | None:
        """Fold one entry (see `apply`)."""
        error = self._apply(entry_id, event)
        self._notify()
        if error is not None:
            self._report(error)
        return error

    def _report(self, error: FoldError) -> None:
        if self.on_error is not None:
            self.on_error(error)

    def _apply(self, entry_id: str, event: Event | BadEntry) -> FoldError | None:
        if entry_id in self._applied:
            return None
        if isinstance(event, BadEntry):
            self._applied.add(entry_id)
            return FoldError(entry_id, event.reason)
        key = cast("EntryKey", entry_id_key(entry_id))
        resend = event.entry_key
        try:
            if resend is not None and type(event) is not Input:
                seen = self._keyed.get(resend)
                if seen is None:  # the common case, inline: a key met for the first time
                    target = event.message_id if type(event) is Output else event.run_id
                    self._keyed[resend] = (key, target or "")
                elif not self._retake(resend, seen, key, event):
                    self._applied.add(entry_id)
                    return None  # the same entry written again: the first one counts
            problem = self._fold(entry_id, key, event)
        except Exception as exc:  # a bug here must not stop the rest of the batch
            problem = f"fold failed: {type(exc).__name__}: {exc}"
        self._applied.add(entry_id)
        return FoldError(entry_id, problem) if problem else None

    def _retake(self, resend: str, seen: tuple[EntryKey, str], key: EntryKey, event: Event) -> bool:
        """A key met before, at `seen`: False when `event` (at `key`) is a later copy; else
        the copy folded first (history read out of order) is taken back, and the earlier
        entry is recorded to be folded in its place."""
        if seen[0] <= key:
            return False
        self._unfold(seen[0], seen[1], event)
        self._keyed[resend] = (key, seen[1])
        return True

    def _unfold(self, key: EntryKey, target: str, event: Event) -> None:
        """Take back what the entry at `key` (a later copy of `event`) folded into `target`."""
        if isinstance(event, Output):
            state = self._messages.get(target)
            if state is not None and state.segment(key) is not None:
                state.drop(key)
                self._reshape = True
                self._changed.add(target)
        elif isinstance(event, Cancel):
            self._cancels = [(k, c) for k, c in self._cancels if k != key]
            for run in self._runs.values():
                self._mark_cancel(run)
        else:
            run = self._runs.get(target)
            if run is not None:
                if run.start_key == key:
                    run.start = run.start_key = None  # the earlier copy takes its place
                    self._reshape = True
                run.lifecycle = [(k, e) for k, e in run.lifecycle if k != key]
                run.recompute()
                self._changed.update(run.messages)

    def _fold(self, entry_id: str, key: EntryKey, event: Event) -> str | None:
        if isinstance(event, Output):
            return self._fold_output(key, event)
        if isinstance(event, Input):
            return self._fold_input(entry_id, key, event)
        if isinstance(event, RunStart | RunResume | RunSuspend | RunEnd):
            return self._fold_lifecycle(key, event)
        self._fold_cancel(key, event)
        return None

    def _fold_output(self, key: EntryKey, event: Output) -> str | None:
        problem = _payload_problem(event.payload)
        if problem:
            return problem
        owner = self._run_of_message.get(event.message_id)
        if owner is not None and owner != event.run_id:
            return f"message {event.message_id!r} belongs to run {owner!r}, not {event.run_id!r}"
        if event.message_id in self._inputs:
            return (
                f"message {event.message_id!r} is an input, not an output of run {event.run_id!r}"
            )
        run = self._run(event.run_id, key)
        state = self._messages.get(event.message_id)
        if state is None:
            state = self._messages[event.message_id] = MessageState(event.message_id, event.role)
        is_new = owner is None
        older = not is_new and key < self._first_key(event.message_id)
        if is_new:
            self._run_of_message[event.message_id] = event.run_id
            run.messages.append(event.message_id)
        if is_new or older:
            # A message's role and parent are those of its first entry, whatever arrives first.
            state.role, state.run_id, state.parent = event.role, event.run_id, event.parent
        state.add(key, cast("list[dict[str, Any]]", event.payload))
        if is_new or older:
            self._order_run_messages(run)
            run.output_parent = self._messages[run.messages[0]].parent
            if older:
                self._reshape = True
            else:
                self._growth.append(("message", run.run_id, event.message_id))
        self._changed.add(event.message_id)
        if run.status == "pending":
            run.recompute()
        return None

    def _order_run_messages(self, run: RunNode) -> None:
        run.messages.sort(key=lambda mid: self._first_key(mid))

    def _first_key(self, message_id: str) -> EntryKey:
        first = self._messages[message_id].first_key
        return (math.inf, math.inf) if first is None else first

    def _run(self, run_id: str, key: EntryKey) -> RunNode:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = RunNode(run_id)
        if run.first_key is None or key < run.first_key:
            run.first_key = key
            if self._cancels:
                self._mark_cancel(run)
        return run

    def _fold_input(self, entry_id: str, key: EntryKey, event: Input) -> str | None:
        payload: Any = event.payload if event.payload is not None else []
        problem = _payload_problem(payload)
        if problem:
            return problem
        events = cast("list[dict[str, Any]]", payload)
        if event.regenerate is not None:
            kind = "regenerate"
        elif events and all(item["type"] in AMENDMENT_TYPES for item in events):
            kind = "amend"
        else:
            kind = "message"
        existing = self._by_event.get(event.event_id)
        if existing is not None:
            if existing.entry_id is None:  # our optimistic copy, echoed: promote in place
                problem = self._promote(existing, event, key, entry_id)
                self._mark_cancels_of_input(event.event_id)
                return problem
            if existing.key <= key:
                return None  # the same input written twice: the first one counts
            if existing.kind == "amend" and event.message_id in self._messages:
                self._messages[event.message_id].drop(existing.key)
        node = _Input(event, key, entry_id, kind, 0)
        self._by_event[event.event_id] = node
        self._mark_cancels_of_input(event.event_id)
        if kind == "message":
            return self._add_input_message(node, events)
        if kind == "amend":
            self._amend(event.message_id, key, events)
        return None

    def _add_input_message(self, node: _Input, events: list[dict[str, Any]]) -> str | None:
        event = node.event
        if event.message_id in self._run_of_message:
            return f"input message id {event.message_id!r} is already an output message"
        current = self._inputs.get(event.message_id)
        if current is not None and current.key <= node.key:
            return None
        self._inputs[event.message_id] = node
        state = self._messages.get(event.message_id)
        if state is None or current is not None:
            state = self._messages[event.message_id] = MessageState(
                event.message_id, event.role, is_input=True
            )
        state.role, state.parent, state.client_id = event.role, event.parent, event.client_id
        state.optimistic = node.entry_id is None
        state.add(node.key, events)
        if event.fork_of is not None:
            self.fork_targets.add(event.fork_of)
        if current is not None:
            self._reshape = True
        else:
            self._growth.append(("input", "", event.message_id))
        self._changed.add(event.message_id)
        return None

    def _amend(self, message_id: str, key: EntryKey, events: list[dict[str, Any]]) -> None:
        state = self._messages.get(message_id)
        if state is None:  # the message may arrive later (history out of order)
            state = self._messages[message_id] = MessageState(message_id)
        state.add(key, events)
        self._changed.add(message_id)

    def _promote(self, node: _Input, echo: Input, key: EntryKey, entry_id: str) -> str | None:
        old = node.key
        node.event, node.key, node.entry_id = echo, key, entry_id
        if node.kind == "message":
            state = self._messages[echo.message_id]
            state.optimistic = False
            payload = cast(list[dict[str, Any]], echo.payload or [])
            state.rekey(old, key)
            if payload != state.segment(key):
                state.replace(key, payload)
            self._reshape = True
            self._changed.add(echo.message_id)
        elif node.kind == "amend":
            state = self._messages.get(echo.message_id)
            if state is not None:
                state.rekey(old, key)
                self._changed.add(echo.message_id)
        return None

    def _fold_lifecycle(
        self, key: EntryKey, event: RunStart | RunResume | RunSuspend | RunEnd
    ) -> str | None:
        run = self._run(event.run_id, key)
        if isinstance(event, RunStart):
            if run.start is not None and run.start_key is not None and run.start_key <= key:
                return None  # a second run.start for the same run: the first one counts
            if run.start is not None:
                self._reshape = True
            else:
                self._growth.append(("start", run.run_id, ""))
            run.start, run.start_key = event, key
        else:
            run.lifecycle.append((key, event))
        before = run.status
        run.recompute()
        if self._cancels:  # a start names the run's input and owner, an end bounds it
            self._mark_cancel(run)
        if run.status != before:
            self._changed.update(run.messages)
        return None

    def _fold_cancel(self, key: EntryKey, event: Cancel) -> None:
        # Kept: a run may come after its cancel (a history page read after live entries, or
        # a cancel by input message id sent before the run started).
        self._cancels.append((key, event))
        for run in self._runs.values():
            self._mark_cancel(run)

    def _mark_cancels_of_input(self, event_id: str) -> None:
        """Cancels are judged against the entry of the input a run answers: judge them again
        for the runs of this input, now that its entry is known."""
        if self._cancels:
            for run in self._runs.values():
                if run.start is not None and run.start.input_event_id == event_id:
                    self._mark_cancel(run)

    def _mark_cancel(self, run: RunNode) -> None:
        node = self._by_event.get(run.start.input_event_id) if run.start is not None else None
        input_key = node.key if node is not None and node.entry_id is not None else None
        requested = any(targets(event, key, run, input_key) for key, event in self._cancels)
        if requested != run.cancel_requested:
            run.cancel_requested = requested
            self._changed.update(run.messages)

    def clear(self) -> None:
        """Forget everything (the channel's stream began again); views follow."""
        self._applied.clear()
        self._keyed.clear()
        self._inputs.clear()
        self._by_event.clear()
        self._runs.clear()
        self._messages.clear()
        self._run_of_message.clear()
        self._cancels.clear()
        self.fork_targets.clear()
        self.history_complete = False
        self._growth.clear()
        self._reshape = True
        self._notify()

    # -- optimistic inputs -------------------------------------------------------------------

    def add_optimistic(self, event: Input) -> None:
        """Show an input this client is publishing before the channel echoes it.

        Regenerate requests and amendments are folded only when echoed.
        """
        if event.event_id in self._by_event:
            return
        payload = cast(list[dict[str, Any]], event.payload or [])
        problem = _payload_problem(payload)
        if problem:
            raise ValueError(problem)
        if event.regenerate is not None or (
            payload and all(item["type"] in AMENDMENT_TYPES for item in payload)
        ):
            return
        self._optimistic_seq += 1
        key: EntryKey = (math.inf, float(self._optimistic_seq))
        node = _Input(event, key, None, "message", self._optimistic_seq)
        self._by_event[event.event_id] = node
        self._add_input_message(node, payload)
        self._notify()

    def remove_optimistic(self, event_id: str) -> None:
        """Take back an optimistic input whose publish failed."""
        node = self._by_event.get(event_id)
        if node is None or node.entry_id is not None:
            return
        del self._by_event[event_id]
        if self._inputs.get(node.event.message_id) is node:
            del self._inputs[node.event.message_id]
            del self._messages[node.event.message_id]
            self._reshape = True
        self._notify()

    # -- reading -----------------------------------------------------------------------------

    def message(self, message_id: str) -> Message | None:
        """The message with this id, as it stands now."""
        state = self._messages.get(message_id)
        if state is None or not self.is_placed(message_id):
            return None
        return self.snapshot(message_id)

    def snapshot(self, message_id: str) -> Message:
        state = self._messages[message_id]
        run_id = self._run_of_message.get(message_id)
        return state.snapshot(self._runs[run_id].status if run_id is not None else None)

    def is_placed(self, message_id: str) -> bool:
        """True for a message that is an input message or an output of a run."""
        return message_id in self._inputs or message_id in self._run_of_message

    def run(self, run_id: str) -> RunInfo | None:
        """The run with this id, as it stands now."""
        run = self._runs.get(run_id)
        return run_info(run) if run is not None else None

    @property
    def runs(self) -> Runs:
        """Every run, oldest first: call it, `tree.runs()`, like the tree's other readers.

        The call gives a plain list. Without the call (the older spelling), the same runs
        as a list that is also callable, so code written either way works.
        """
        return Runs(run_info(r) for r in sorted(self._runs.values(), key=lambda r: r.key))

    def run_for_input(self, input_message_id: str) -> RunInfo | None:
        """The newest run started for the input with this message id."""
        found = [
            r for r in self._runs.values()
            if r.start is not None and r.start.input_message_id == input_message_id
        ]  # fmt: skip
        return run_info(max(found, key=lambda r: r.key)) if found else None

    def is_resend(self, entry_id: str, event: Event | BadEntry) -> bool:
        """True for an entry the fold ignores as a copy of an earlier one (same resend key).

        Live, in entry order, a copy always comes after the entry it repeats, so a reader
        that acts on entries as they come (an `ActiveRun` streaming text) asks this after
        `apply` to skip copies as the tree does.
        """
        resend = getattr(event, "entry_key", None)
        if resend is None or isinstance(event, Input):
            return False
        seen = self._keyed.get(resend)
        return seen is not None and seen[0] < entry_id_key(entry_id)

    def input_event(self, event_id: str) -> tuple[str, Input] | None:
        """The echoed input with this event id, and its entry id (agents look inputs up so)."""
        node = self._by_event.get(event_id)
        if node is None or node.entry_id is None:
            return None
        return node.entry_id, node.event

    def path_to(self, message_id: str) -> list[Message]:
        """The messages leading to `message_id` (included), oldest first: its branch only."""
        chain: list[Message] = []
        seen: set[str] = set()
        current: str | None = message_id
        while current is not None and current not in seen and self.is_placed(current):
            seen.add(current)
            chain.append(self.snapshot(current))
            current = self.parent_of(current)
        chain.reverse()
        return chain

    def parent_of(self, message_id: str) -> str | None:
        """The previous message on the branch: an input's `parent`, an output's predecessor."""
        node = self._inputs.get(message_id)
        if node is not None:
            return node.event.parent
        run_id = self._run_of_message.get(message_id)
        if run_id is None:
            return None
        run = self._runs[run_id]
        index = run.messages.index(message_id)
        return run.messages[index - 1] if index > 0 else run.anchor

    def __len__(self) -> int:
        """The number of messages, on every branch."""
        return len(self._inputs) + len(self._run_of_message)

    def __iter__(self) -> Iterator[Message]:
        """Every message of every branch, oldest first (entry order), as snapshots."""
        for message_id in list(self.structure.order):
            yield self.snapshot(message_id)

    # internal views of the structure, for `View` and `Structure`
    @property
    def input_nodes(self) -> dict[str, _Input]:
        return self._inputs

    @property
    def run_nodes(self) -> dict[str, RunNode]:
        return self._runs

    def message_key(self, message_id: str) -> EntryKey:
        node = self._inputs.get(message_id)
        return node.key if node is not None else self._first_key(message_id)

    def run_of(self, message_id: str) -> str | None:
        return self._run_of_message.get(message_id)


def _payload_problem(payload: object) -> str | None:
    if type(payload) is not list:
        return f"payload must be a list of codec events, not {type(payload).__name__}"
    for item in cast("list[object]", payload):
        # The common case, checked inline: a text delta (a token).
        if type(item) is dict:
            event = cast("dict[str, Any]", item)
            if event.get("type") == "text-delta":
                part_id, delta = event.get("id"), event.get("delta")
                if type(part_id) is str and part_id and type(delta) is str:
                    continue
        problem = wire_problem(cast("object", item))
        if problem:
            return problem
    return None
