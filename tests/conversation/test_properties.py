"""Convergence: however a channel's entries reach a client, its tree ends up the same.

Random conversations (edits, regenerations, concurrent runs streaming interleaved, tool calls
answered by a client, suspend/resume, cancels, bad entries, an agent's resends of entries
that had landed) are written with increasing entry ids, then folded in entry order, in any
arrival order that keeps each run's own order (also after showing some inputs
optimistically), with duplicates, and as live entries followed by history pages read
backward. Every fold must give the same canonical dump: every message, every run, and what
a fresh view shows; and the resends change nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ait.codec.chat import CHAT_EVENT_TYPES, ChatCodec
from ait.conversation import Tree, View
from ait.events import Input, RunEndReason

from .builders import Chat, Entry, Wire, finish, reasoning, text

CLIENTS = ["alice", "bob"]
ENDINGS: list[RunEndReason] = ["complete", "cancelled", "error"]
CONTENT: list[Wire] = [
    text("x"),
    text("y", "t1"),
    reasoning("hm"),
    {"type": "usage", "completion_tokens": 3},
    {"type": "data", "id": "d", "name": "n", "data": [1]},
]
TOOL_CALL: Wire = {"type": "tool-input-available", "id": "c", "name": "tool", "input": {}}
TOOL_RESULTS = [
    ChatCodec.tool_result("c", {"ok": True}),
    ChatCodec.tool_error("c", "failed"),
    ChatCodec.approval("c", False, "no"),
    ChatCodec.approval("c", True),
]


@dataclass
class RunPlan:
    """The entries of one run still to be written, in order."""

    run_id: str
    steps: list[Callable[[], None]] = field(default_factory=list[Callable[[], None]])


@dataclass
class Script:
    """A conversation: its entries in entry-id order, and what each belongs to."""

    entries: list[Entry]
    #: Per entry: the run it belongs to (its order must be kept), or None.
    runs: list[str | None]
    message_ids: list[str]
    #: Indexes of the entries that are an agent's resends of earlier ones (same key).
    resends: set[int] = field(default_factory=set[int])


class Writer:
    """Writes a random conversation with a `Chat`, drawing every choice from hypothesis."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.chat = Chat()
        self.runs: list[str | None] = []
        self.counter = 0
        self.inputs: dict[str, str | None] = {}  # input message id -> parent
        self.outputs: list[str] = []
        self.first_outputs: dict[str, str] = {}  # first message of a run -> the run's anchor
        self.started: list[str] = []
        self.open: list[RunPlan] = []
        self.published: list[Input] = []
        self.keyed: list[tuple[Entry, str]] = []  # an agent's entries, and their runs
        self.resends: set[int] = set()

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, entry: Entry, run_id: str | None = None) -> None:
        """Note what the entry just written belongs to; an agent's entries get resend keys,
        as a run's writer gives them."""
        self.runs.append(run_id)
        if isinstance(entry[1], Input):
            self.published.append(entry[1])
        elif run_id is not None:
            keyed = (entry[0], entry[1].model_copy(update={"entry_key": f"k{entry[0]}"}))
            self.chat.entries[-1] = keyed
            self.keyed.append((keyed, run_id))

    def pick(self, options: list[str]) -> str:
        return self.draw(st.sampled_from(options))

    # -- what clients do -----------------------------------------------------------------

    def send(self) -> None:
        """A new message after the newest message, or under any earlier one (a new branch)."""
        known = [*self.inputs, *self.outputs]
        if not known:
            parent = None
        elif self.draw(st.booleans()):
            parent = known[-1]
        else:
            parent = self.pick(known)
        self._input(self.fresh("u"), parent, fork_of=None)

    def edit(self) -> None:
        target = self.pick(list(self.inputs))
        self._input(self.fresh("u"), self.inputs[target], fork_of=target)

    def _input(self, message_id: str, parent: str | None, fork_of: str | None) -> None:
        client = self.pick(CLIENTS)
        entry = self.chat.user(
            message_id, self.fresh("q"), parent=parent, fork_of=fork_of, client=client
        )
        self.emit(entry)
        self.inputs[message_id] = parent
        self._plan_run(message_id, anchor=message_id, client=client, regenerate=None)

    def regenerate(self) -> None:
        target = self.pick(sorted(self.first_outputs))
        anchor = self.first_outputs[target]
        request = self.fresh("g")
        client = self.pick(CLIENTS)
        self.emit(self.chat.regenerate(request, target, parent=anchor, client=client))
        self._plan_run(request, anchor=anchor, client=client, regenerate=target)

    def cancel(self) -> None:
        kind = self.draw(st.sampled_from(["run", "input", "client", "all"]))
        client = self.pick(CLIENTS)
        if kind == "run" and self.started:
            self.emit(self.chat.cancel(run_id=self.pick(self.started)))
        elif kind == "input" and self.inputs:
            self.emit(self.chat.cancel(input_message_id=self.pick(list(self.inputs))))
        elif kind == "client":
            self.emit(self.chat.cancel(scope="client", client=client))
        else:
            self.emit(self.chat.cancel(scope="all", client=client))

    def retry(self) -> None:
        """A publish retried after a timeout: the same input event at a second entry id."""
        self.emit(self.chat.add(self.draw(st.sampled_from(self.published))))

    def resend(self) -> None:
        """An agent's writer did not hear back from Redis and wrote an entry again: the same
        fields (key included) at a later entry id, whether or not the first had landed."""
        (_, event), run_id = self.draw(st.sampled_from(self.keyed))
        self.resends.add(len(self.chat.entries))
        self.runs.append(run_id)
        self.chat.add(event)

    def bad(self) -> None:
        self.emit(self.chat.bad("undecodable entry"))

    # -- what agents do ------------------------------------------------------------------

    def _plan_run(self, input_id: str, *, anchor: str, client: str, regenerate: str | None) -> None:
        """Plan the run answering `input_id`; `advance` writes its steps, interleaved."""
        draw, chat = self.draw, self.chat
        run_id, first = self.fresh("r"), self.fresh("a")
        plan = RunPlan(run_id)
        invocation = f"inv-{run_id}"

        def lifecycle(write: Callable[[], Entry]) -> None:
            plan.steps.append(lambda: self.emit(write(), run_id))

        def output(message_id: str, parent: str, *payload: Wire) -> None:
            def write() -> None:
                self.emit(chat.out(run_id, message_id, *payload, parent=parent), run_id)
                if message_id not in self.outputs:
                    self.outputs.append(message_id)
                    if message_id == first:
                        self.first_outputs[message_id] = anchor

            plan.steps.append(write)

        def start() -> Entry:
            self.started.append(run_id)
            return chat.start(run_id, input_id, parent=anchor, regenerate=regenerate, client=client)

        lifecycle(start)
        contents = st.lists(st.sampled_from(CONTENT), min_size=1, max_size=3)
        for payload in draw(st.lists(contents, max_size=3)):
            output(first, anchor, *payload)
        last, last_parent = first, anchor
        if draw(st.booleans()):  # a tool call a client runs: suspend, result, resume
            approval = [{"type": "tool-approval-request", "id": "c"}] if draw(st.booleans()) else []
            output(first, anchor, TOOL_CALL, *approval)
            lifecycle(lambda: chat.suspend(run_id, invocation=f"inv-{run_id}"))
            result = draw(st.sampled_from(TOOL_RESULTS))
            plan.steps.append(lambda: self.emit(chat.amend(first, result, client=client)))
            invocation = f"inv-{run_id}-resumed"
            lifecycle(lambda: chat.resume(run_id, input_id, invocation=invocation, client=client))
            if draw(st.booleans()):  # a second message after the tool's result
                last, last_parent = self.fresh("a"), first
                output(last, last_parent, text("after the tool"))
        if draw(st.booleans()):
            output(last, last_parent, finish(draw(st.sampled_from(ENDINGS))))
        ending = draw(st.sampled_from([*ENDINGS, None]))
        if ending is not None:
            error = ("e", "boom") if ending == "error" else None
            lifecycle(lambda: chat.end(run_id, ending, invocation=invocation, error=error))
        self.open.append(plan)

    def advance(self) -> None:
        """One step of one open run (runs interleave: they stream concurrently)."""
        index = self.draw(st.integers(0, len(self.open) - 1))
        plan = self.open[index]
        plan.steps.pop(0)()
        if not plan.steps:
            self.open.pop(index)

    def write(self) -> Script:
        for _ in range(self.draw(st.integers(1, 24))):
            moves = ["send", "cancel", "bad"]
            if self.inputs:
                moves.append("edit")
            if self.published:
                moves.append("retry")
            if self.keyed:
                moves.append("resend")
            if self.first_outputs:
                moves.append("regenerate")
            if self.open:
                moves += ["advance"] * 4
            getattr(self, self.draw(st.sampled_from(moves)))()
        while self.open:  # finish the runs, or leave some cut short
            if self.draw(st.integers(0, 9)) == 0:
                self.open.pop(0)
            else:
                self.advance()
        assert len(self.runs) == len(self.chat.entries)
        return Script(self.chat.entries, self.runs, [*self.inputs, *self.outputs], self.resends)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    return Writer(draw).write()


# -- canonical dump -----------------------------------------------------------------------


def dump(tree: Tree, script: Script) -> dict[str, Any]:
    view = View(tree, window=10_000)
    return {
        "messages": {mid: tree.message(mid) for mid in script.message_ids},
        "runs": tree.runs(),
        "view": view.messages,
        "siblings": {mid: [m.id for m in view.siblings(mid)] for mid in view.message_ids},
        "selected": {mid: view.selected_index(mid) for mid in view.message_ids},
        "window": View(tree, window=3).message_ids,
        "len": len(tree),
    }


def fold_batches(batches: list[list[Entry]]) -> tuple[Tree, set[str | None]]:
    tree = Tree()
    errors: set[str | None] = set()
    for batch in batches:
        for error in tree.apply(batch):
            assert error.entry_id not in errors, "an entry reported twice"
            errors.add(error.entry_id)
    return tree, errors


def structure_dump(tree: Tree) -> tuple[Any, ...]:
    s = tree.structure
    return (
        list(s.order),
        dict(s.key),
        {group: list(members) for group, members in s.members.items()},
        dict(s.up),
        dict(s.group),
        dict(s.group_of_input),
        dict(s.group_of_run),
    )


def keep_run_order(entries: list[Entry], runs: list[str | None], order: list[int]) -> list[Entry]:
    """`order` applied to the entries, except that each run's entries keep their own order."""
    queues: dict[str, list[Entry]] = defaultdict(list)
    for entry, run in zip(entries, runs, strict=True):
        if run is not None:
            queues[run].append(entry)
    result: list[Entry] = []
    for index in order:
        run = runs[index]
        result.append(queues[run].pop(0) if run is not None else entries[index])
    return result


def split(entries: list[Entry], cuts: list[int]) -> list[list[Entry]]:
    bounds = [0, *sorted({c % (len(entries) + 1) for c in cuts}), len(entries)]
    return [entries[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts(), data=st.data())
def test_every_arrival_order_folds_to_the_same_tree(script: Script, data: st.DataObject) -> None:
    entries, n = script.entries, len(script.entries)

    # (a) in entry order, one entry at a time, with a view following live
    live = Tree()
    follower = View(live, window=4)
    for entry in entries:
        live.apply([entry])
        assert follower.messages == [live.message(mid) for mid in follower.message_ids]
    reference, reference_errors = fold_batches([entries])
    expected = dump(reference, script)
    assert dump(live, script) == expected
    # An agent's resends fold away: the tree is the one its entries make written once.
    once = [entry for index, entry in enumerate(entries) if index not in script.resends]
    assert dump(fold_batches([once])[0], script) == expected
    incremental = structure_dump(live)
    live.structure.rebuild()
    assert structure_dump(live) == incremental, "the structure's fast path diverged"

    # (b) any arrival order that keeps each run's own order, in random batches
    order = data.draw(st.permutations(range(n)), label="order")
    shuffled = keep_run_order(entries, script.runs, order)
    cuts = data.draw(st.lists(st.integers(0, n), max_size=4), label="cuts")
    tree, errors = fold_batches(split(shuffled, cuts))
    assert dump(tree, script) == expected
    assert errors == reference_errors

    # (b') the same, by a client that showed some inputs optimistically before their echo
    mine = [event for _, event in entries if isinstance(event, Input)]
    optimistic = data.draw(st.lists(st.sampled_from(mine), max_size=3) if mine else st.just([]))
    tree = Tree()
    for event in optimistic:
        tree.add_optimistic(event)
    for batch in split(shuffled, cuts):
        tree.apply(batch)
    assert dump(tree, script) == expected

    # (c) with duplicates injected anywhere
    duplicated = list(shuffled)
    for index, position in data.draw(
        st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, n)), max_size=6),
        label="duplicates",
    ):
        if n:
            duplicated.insert(position, entries[index])
    tree, errors = fold_batches(split(duplicated, cuts))
    assert dump(tree, script) == expected
    assert errors == reference_errors

    # (d) live entries first, then history pages read backward
    pages = split(entries, data.draw(st.lists(st.integers(0, n), max_size=4), label="pages"))
    tree, errors = fold_batches(list(reversed(pages)))
    assert dump(tree, script) == expected
    assert errors == reference_errors


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts(), data=st.data())
def test_even_an_order_that_mixes_up_a_runs_entries_converges(
    script: Script, data: st.DataObject
) -> None:
    """Run lifecycles and message segments are folded by entry id, not arrival."""
    expected = dump(fold_batches([script.entries])[0], script)
    order = data.draw(st.permutations(script.entries))
    assert dump(fold_batches([[entry] for entry in order])[0], script) == expected


# -- whatever another writer sends, a reader never crashes --------------------------------

_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=4)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=2)
    ),
    max_leaves=5,
)
# One well-formed map per codec event type; the strategy overrides some of its fields.
_WELL_FORMED: dict[str, Wire] = {
    "start": {"type": "start", "metadata": {"k": 1}},
    "text-delta": text("hi"),
    "reasoning-delta": reasoning("hm"),
    "tool-input-start": {"type": "tool-input-start", "id": "c1", "name": "calc"},
    "tool-input-delta": {"type": "tool-input-delta", "id": "c1", "delta": "{"},
    "tool-input-available": {"type": "tool-input-available", "id": "c1", "name": "calc"},
    "tool-output-available": {"type": "tool-output-available", "id": "c1", "output": 3},
    "tool-output-error": {"type": "tool-output-error", "id": "c1", "error": "boom"},
    "tool-approval-request": {"type": "tool-approval-request", "id": "c1"},
    "tool-approval-response": {"type": "tool-approval-response", "id": "c1", "approved": True},
    "data": {"type": "data", "id": "d1", "name": "chart", "data": [1]},
    "usage": {"type": "usage", "prompt_tokens": 3},
    "metrics": {"type": "metrics", "tokens_per_second": 1.5},
    "finish": finish(),
    "error": {"type": "error", "code": "x", "message": "boom"},
}
_codec_events = st.sampled_from(sorted(CHAT_EVENT_TYPES)).flatmap(
    lambda kind: st.fixed_dictionaries(
        {},
        optional={
            name: st.none() | st.sampled_from(["t0", "c1"]) | _values
            for name in CHAT_EVENT_TYPES[kind].model_fields
            if name != "type"
        },
    ).map(lambda overrides: {**_WELL_FORMED[kind], **overrides})
)


def test_the_well_formed_samples_are_well_formed() -> None:
    assert set(_WELL_FORMED) == set(CHAT_EVENT_TYPES)
    assert len(ChatCodec.decode(list(_WELL_FORMED.values()))) == len(CHAT_EVENT_TYPES)


@settings(max_examples=500, deadline=None)
@given(payloads=st.lists(st.tuples(st.booleans(), st.lists(_codec_events, max_size=4)), max_size=6))
def test_a_reader_never_crashes_on_what_a_writer_sent(
    payloads: list[tuple[bool, list[Wire]]],
) -> None:
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    for from_client, payload in payloads:
        if from_client:
            chat.amend("a1", payload)
        else:
            chat.out("r1", "a1", *payload, parent="u1")
    tree = Tree()
    errors = tree.apply(chat.entries)
    view = View(tree)
    assert [m.id for m in view.messages][0] == "u1"
    for message in view.messages:
        assert message.status in ("streaming", "complete", "cancelled", "error")
        assert isinstance(message.text, str)
    assert len(errors) <= len(payloads)
