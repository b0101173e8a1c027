"""The conversation fold, measured: how fast entries fold into a Tree and reach its Views.

    .venv/bin/python bench/fold.py [--rounds N] [--quick] [--seed S] [--strict]

No Redis. Entries are built in memory before any timing (pydantic events, as the decoder
hands them over), then folded with `Tree.apply_one` (live: one entry at a time, as a
subscription delivers them) or with `Tree.apply` (one batch, as a history load does).

Scenarios:
  1 fold   a 50-turn conversation with 5 branches (3 edits, 2 regenerations), each reply
           streamed in entries of 1 to 8 text deltas (seeded), folded with 0, 1 and 3 views
           attached, live and as one batch.
           Target: >= 150,000 delta entries/s folded live (apply_one) with 1 view attached.
  2 delta  one text delta reaching a view, on conversations of 100, 1,000 and 5,000
           messages: `tree.apply_one` with the view's `on_change` callback receiving the
           change, and the same plus reading `view.messages[-1].text` after every delta.
           A reply of 500 deltas. Target: < 20 us per delta at 1,000 messages.
  3 reply  the same on 1,000 messages, when the streaming reply already holds 100, 1,000 or
           4,000 text chunks: what a long reply costs per delta (reported, not judged).

Outputs and run ends carry resend keys, as a run's writer writes them (the fold records
each key); `--unkeyed` leaves them out, as writers that never resend do.

Each measurement is repeated for --rounds rounds (default 5); the report gives the median,
min and max over rounds, judges the median, and ends with a Markdown table for
docs/performance.md. Every fold is checked after timing (the view shows the expected branch,
every text equals its concatenated deltas, no fold error), so a wrong fold fails the run
instead of passing it. Nothing is disabled: the garbage collector runs as usual (a full
collection runs before each timed loop, outside the timing).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ait.codec.chat import ChatCodec
from ait.conversation import Tree, View, ViewChange
from ait.events import Event, Input, Output, RunEnd, RunStart

Entry = tuple[str, Event]

#: Large enough for every view to show the whole branch, so the check covers all of it.
WHOLE = 1_000_000

FOLD_TARGET = 150_000  # delta entries/s, live, 1 view
DELTA_TARGET_US = 20.0  # per delta, at 1,000 messages

_WORDS = (
    "the ", "tree ", "folds ", "every ", "entry ", "of ", "a ", "channel ", "into ", "messages",
    ", ", ". ", "and ", "views ", "render ", "branch", "es ", "token", "s ", "stream ", "live ",
    "edit", "regenerat", "ion ", "\n", "`", "code", "()", "é", "🙂",
)  # fmt: skip


# -- entries -----------------------------------------------------------------------------------


class Ids:
    """Entry ids as Redis mints them: milliseconds, with a sequence within a millisecond."""

    def __init__(self, start_ms: int = 1_732_000_000_000) -> None:
        self._ms = start_ms
        self._seq = 0

    def next(self) -> str:
        self._seq += 1
        if self._seq == 4:
            self._ms, self._seq = self._ms + 1, 0
        return f"{self._ms}-{self._seq}"


def _user(message_id: str, text: str, parent: str | None, fork_of: str | None = None) -> Input:
    return Input(
        event_id=f"ev-{message_id}",
        message_id=message_id,
        role="user",
        client_id="alice",
        parent=parent,
        fork_of=fork_of,
        payload=ChatCodec.user_text(text),
    )


def _start(run_id: str, input_id: str, parent: str, regenerate: str | None = None) -> RunStart:
    return RunStart(
        run_id=run_id,
        invocation_id=f"inv-{run_id}",
        input_event_id=f"ev-{input_id}",
        input_message_id=input_id,
        run_client_id="alice",
        parent=parent,
        regenerate=regenerate,
    )


#: Key outputs and run ends as a run's writer does (`--unkeyed`: as a writer that never
#: resends, before resend keys): the fold then records every key it folds.
KEYED = True
_keys = itertools.count(1)


def _key() -> str | None:
    return f"3f2a9c0d1e4b5a67-{next(_keys):x}" if KEYED else None


def _output(run_id: str, message_id: str, parent: str, deltas: Sequence[str]) -> Output:
    return Output(
        run_id=run_id,
        message_id=message_id,
        role="assistant",
        parent=parent,
        payload=[{"type": "text-delta", "id": "t0", "delta": d} for d in deltas],
        entry_key=_key(),
    )


def _end(run_id: str) -> RunEnd:
    return RunEnd(run_id=run_id, invocation_id=f"inv-{run_id}", reason="complete", entry_key=_key())


@dataclass
class Conversation:
    """Entries of one channel, and what a correct fold of them shows."""

    entries: list[Entry] = field(default_factory=list[Entry])
    branch: list[str] = field(default_factory=list[str])  # the newest branch, oldest first
    texts: dict[str, str] = field(default_factory=dict[str, str])  # every message's text
    own_edits: list[str] = field(default_factory=list[str])
    own_regenerates: list[str] = field(default_factory=list[str])
    delta_entries: int = 0
    deltas: int = 0

    def add(self, ids: Ids, event: Event) -> None:
        self.entries.append((ids.next(), event))


def build_conversation(
    seed: int,
    turns: int = 50,
    edits: Sequence[int] = (12, 27, 41),
    regenerates: Sequence[int] = (19, 34),
    reply_entries: tuple[int, int] = (20, 60),
) -> Conversation:
    """A conversation of `turns` turns; after turn t in `edits` the user edits the message of
    turn t, after turn t in `regenerates` the reply of turn t is regenerated; the conversation
    then goes on from the new branch (so the newest branch is `turns` turns long)."""
    rng = random.Random(seed)
    ids = Ids()
    conv = Conversation()

    def reply(run_id: str, message_id: str, parent: str) -> None:
        chunks: list[str] = []
        for _ in range(rng.randint(*reply_entries)):
            deltas = [rng.choice(_WORDS) for _ in range(rng.randint(1, 8))]
            chunks += deltas
            conv.add(ids, _output(run_id, message_id, parent, deltas))
            conv.delta_entries += 1
            conv.deltas += len(deltas)
        conv.add(ids, _end(run_id))
        conv.texts[message_id] = "".join(chunks)

    def exchange(user_id: str, parent: str | None, fork_of: str | None = None) -> None:
        text = f"question {user_id}: " + "".join(rng.choice(_WORDS) for _ in range(12))
        conv.add(ids, _user(user_id, text, parent, fork_of))
        conv.texts[user_id] = text
        run_id, answer_id = f"run-{user_id}", f"a-{user_id}"
        conv.add(ids, _start(run_id, user_id, parent=user_id))
        reply(run_id, answer_id, parent=user_id)
        conv.branch += [user_id, answer_id]

    parent: str | None = None
    for turn in range(1, turns + 1):
        user_id = f"u{turn}"
        exchange(user_id, parent)
        if turn in edits:
            # The user edits their message: a sibling input under the same parent.
            del conv.branch[-2:]
            edit_id = f"u{turn}-edit"
            conv.own_edits.append(edit_id)
            exchange(edit_id, parent, fork_of=user_id)
            user_id = edit_id
        if turn in regenerates:
            # A sibling run under the same input: the request is not a message itself.
            old_answer = conv.branch.pop()
            request = f"q{turn}"
            conv.own_regenerates.append(request)
            conv.add(
                ids,
                Input(
                    event_id=f"ev-{request}",
                    message_id=request,
                    role="user",
                    client_id="alice",
                    parent=user_id,
                    regenerate=old_answer,
                ),
            )
            run_id, answer_id = f"run-{request}", f"a-{request}"
            conv.add(ids, _start(run_id, request, parent=user_id, regenerate=old_answer))
            reply(run_id, answer_id, parent=user_id)
            conv.branch.append(answer_id)
        parent = conv.branch[-1]
    return conv


# -- checks ------------------------------------------------------------------------------------


class FoldMismatch(AssertionError):
    """The fold did not give what the entries say: the benchmark must not report it."""


def check_view(view: View, branch: list[str], texts: dict[str, str], what: str) -> None:
    if view.message_ids != branch:
        raise FoldMismatch(
            f"{what}: the view shows {len(view.message_ids)} messages, expected {len(branch)}"
            f" (first difference at {_first_difference(view.message_ids, branch)})"
        )
    messages = view.messages
    if messages[-1].text != texts[branch[-1]]:
        raise FoldMismatch(f"{what}: the last message's text is not its concatenated deltas")
    for message in messages:
        if message.text != texts[message.id]:
            raise FoldMismatch(f"{what}: message {message.id!r} has the wrong text")


def _first_difference(a: Sequence[str], b: Sequence[str]) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


# -- scenario 1: fold throughput ---------------------------------------------------------------


class Seen:
    """What a view's on_change callback received: how many changes, of which kinds, the last.

    The callback keeps no list of changes: retaining thousands of objects would make the
    garbage collector's work, and so the measurement, depend on the benchmark itself."""

    def __init__(self) -> None:
        self.count = 0
        self.kinds: set[str] = set()
        self.last: ViewChange | None = None

    def callback(self) -> Callable[[ViewChange], None]:
        kinds = self.kinds

        def on_change(change: ViewChange) -> None:  # what a UI callback does at least
            self.count += 1
            kinds.add(change.kind)
            self.last = change

        return on_change

    def clear(self) -> None:
        self.count, self.last = 0, None
        self.kinds.clear()


def fold_once(conv: Conversation, mode: str, views: int) -> int:
    """Fold `conv` into a fresh tree with `views` views; return the nanoseconds it took."""
    tree = Tree()
    attached: list[View] = []
    seen = Seen()
    for _ in range(views):
        view = View(tree, window=WHOLE)
        view.on_change(seen.callback())
        # The edits and regenerations are this client's own: its views follow them.
        for message_id in conv.own_edits:
            view.expect_edit(message_id)
        for request in conv.own_regenerates:
            view.expect_regenerate(request)
        attached.append(view)
    entries = conv.entries
    errors = 0
    if mode == "live":
        apply_one = tree.apply_one
        started = time.perf_counter_ns()
        for entry_id, event in entries:
            if apply_one(entry_id, event) is not None:
                errors += 1
        elapsed = time.perf_counter_ns() - started
    else:
        started = time.perf_counter_ns()
        errors = len(tree.apply(entries))
        elapsed = time.perf_counter_ns() - started
    if errors:
        raise FoldMismatch(f"fold {mode}: {errors} fold errors")
    if len(tree) != len(conv.texts):
        raise FoldMismatch(f"fold {mode}: the tree holds {len(tree)} of {len(conv.texts)}")
    for index, view in enumerate(attached):
        check_view(view, conv.branch, conv.texts, f"fold {mode}, view {index + 1}/{views}")
    if views and not seen.count:
        raise FoldMismatch(f"fold {mode}: the views reported no change")
    return elapsed


@dataclass
class Series:
    """One metric over rounds."""

    values: list[float] = field(default_factory=list[float])

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)


def scenario_fold(conv: Conversation, rounds: int, reps: int) -> dict[tuple[str, int], Series]:
    """Delta entries/s per (mode, views), one value per round (reps folds per round)."""
    configs = [(mode, views) for mode in ("live", "batch") for views in (0, 1, 3)]
    results = {config: Series() for config in configs}
    for config in configs:  # warm up every path once, untimed
        fold_once(conv, *config)
    for index in range(rounds):
        _progress(f"fold: round {index + 1}/{rounds}")
        for config in configs:  # interleaved: every config sees the same machine
            gc.collect()
            total = sum(fold_once(conv, *config) for _ in range(reps))
            results[config].values.append(conv.delta_entries * reps / (total / 1e9))
    return results


# -- scenario 2: one delta reaching a view -----------------------------------------------------


@dataclass
class Stream:
    """A conversation of `size` messages whose last (assistant) message is streaming."""

    history: list[Entry]
    first: Entry  # the last message's first output: places it (not timed)
    deltas: list[Entry]  # one text delta each
    message_id: str
    text: str
    texts: dict[str, str]
    branch: list[str]


def build_stream(size: int, count: int, seed: int) -> Stream:
    rng = random.Random(seed)
    ids = Ids()
    history: list[Entry] = []
    texts: dict[str, str] = {}
    branch: list[str] = []
    parent: str | None = None
    turns = size // 2
    for turn in range(1, turns + 1):
        user_id, run_id, answer_id = f"u{turn}", f"run-{turn}", f"a{turn}"
        question = f"question {turn}"
        history.append((ids.next(), _user(user_id, question, parent)))
        history.append((ids.next(), _start(run_id, user_id, parent=user_id)))
        texts[user_id] = question
        branch += [user_id, answer_id]
        if turn < turns:
            words = [rng.choice(_WORDS) for _ in range(20)]
            history.append((ids.next(), _output(run_id, answer_id, user_id, words)))
            history.append((ids.next(), _end(run_id)))
            texts[answer_id] = "".join(words)
        parent = answer_id
    user_id, run_id, answer_id = f"u{turns}", f"run-{turns}", f"a{turns}"
    first = (ids.next(), _output(run_id, answer_id, user_id, ["Sure"]))
    words = [rng.choice(_WORDS) for _ in range(count)]
    deltas: list[Entry] = [(ids.next(), _output(run_id, answer_id, user_id, [w])) for w in words]
    texts[answer_id] = "Sure" + "".join(words)
    return Stream(history, first, deltas, answer_id, texts[answer_id], texts, branch)


DELTA_VIEWS = ("none", "window", "whole")
DELTA_VIEW_LABELS = {
    "none": "no view (tree only)",
    "window": "1 view, window 50 (default)",
    "whole": "1 view, whole conversation shown",
}


def stream_once(stream: Stream, view_kind: str, read: bool, skip: int = 0) -> int:
    """Fold the stream's history, then its deltas one at a time; return the nanoseconds the
    deltas after the first `skip` took (those are folded first, untimed)."""
    tree = Tree()
    if tree.apply(stream.history):
        raise FoldMismatch("delta: the history did not fold cleanly")
    view: View | None = None
    seen = Seen()
    if view_kind != "none":
        view = View(tree, window=50 if view_kind == "window" else WHOLE)
        view.on_change(seen.callback())
    apply_one = tree.apply_one
    errors = 0
    for entry_id, event in [stream.first, *stream.deltas[:skip]]:
        if apply_one(entry_id, event) is not None:
            errors += 1
    if view is not None:
        view.messages  # noqa: B018 (a UI has rendered the list before the timed deltas)
    seen.clear()
    timed = stream.deltas[skip:]
    text = ""
    gc.collect()  # settle the heap the setup built, so its first scans do not land in the timing
    if read:
        assert view is not None
        started = time.perf_counter_ns()
        for entry_id, event in timed:
            if apply_one(entry_id, event) is not None:
                errors += 1
            text = view.messages[-1].text
        elapsed = time.perf_counter_ns() - started
    else:
        started = time.perf_counter_ns()
        for entry_id, event in timed:
            if apply_one(entry_id, event) is not None:
                errors += 1
        elapsed = time.perf_counter_ns() - started
    # Checks, untimed.
    if errors:
        raise FoldMismatch(f"delta: {errors} fold errors")
    message = tree.message(stream.message_id)
    if message is None or message.text != stream.text:
        raise FoldMismatch("delta: the streamed message's text is not its concatenated deltas")
    if view is not None:
        expected = stream.branch if view_kind == "whole" else stream.branch[-51:]
        check_view(view, expected, stream.texts, f"delta, {view_kind}")
        if read and text != stream.text:
            raise FoldMismatch("delta: the text read after the last delta is wrong")
        last = seen.last
        if (
            seen.count != len(timed)
            or seen.kinds != {"content"}
            or last is None
            or last.message_ids != (stream.message_id,)
        ):
            raise FoldMismatch("delta: on_change did not get one content change per delta")
    return elapsed


@dataclass
class DeltaResult:
    notify: Series = field(default_factory=Series)  # us per delta
    read: Series = field(default_factory=Series)  # us per delta, with the read


def scenario_delta(
    sizes: Sequence[int], count: int, rounds: int, seed: int
) -> dict[tuple[int, str], DeltaResult]:
    """[2]: us per delta by conversation length and view, a reply of `count` deltas."""
    streams = {size: build_stream(size, count, seed) for size in sizes}
    results = {(size, kind): DeltaResult() for size in sizes for kind in DELTA_VIEWS}
    for index in range(rounds):
        _progress(f"delta: round {index + 1}/{rounds}")
        for (size, kind), result in results.items():
            _measure(result, streams[size], kind, 0, count)
    return results


def scenario_reply(
    size: int, prefills: Sequence[int], count: int, rounds: int, seed: int
) -> dict[int, DeltaResult]:
    """[3]: us per delta by the length the streaming reply already has (whole view)."""
    streams = {p: build_stream(size, p + count, seed) for p in prefills}
    results = {p: DeltaResult() for p in prefills}
    for index in range(rounds):
        _progress(f"reply: round {index + 1}/{rounds}")
        for prefill, result in results.items():
            _measure(result, streams[prefill], "whole", prefill, count)
    return results


def _measure(result: DeltaResult, stream: Stream, kind: str, skip: int, count: int) -> None:
    result.notify.values.append(stream_once(stream, kind, False, skip) / count / 1000)
    if kind != "none":
        result.read.values.append(stream_once(stream, kind, True, skip) / count / 1000)


# -- report ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    number: str
    label: str
    metric: str
    series: Series
    unit: str
    digits: int
    target: str
    passed: bool | None  # None: reported, not judged

    @property
    def result(self) -> str:
        return "-" if self.passed is None else ("PASS" if self.passed else "MISS")

    def show(self, value: float) -> str:
        return f"{value:,.{self.digits}f}"


def _progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def _mmm(series: Series, digits: int) -> str:
    return f"{series.median:,.{digits}f} / {series.min:,.{digits}f} / {series.max:,.{digits}f}"


def report_fold(
    conv: Conversation, results: dict[tuple[str, int], Series], rounds: int, reps: int
) -> list[Verdict]:
    entries = len(conv.entries)
    print()
    print("[1] fold: a 50-turn conversation with 5 branches (3 edits, 2 regenerations)")
    print(
        f"    {entries:,} entries: {conv.delta_entries:,} delta entries carrying"
        f" {conv.deltas:,} text deltas (1 to 8 each), {len(conv.texts)} messages in the tree,"
        f" {len(conv.branch)} on the newest branch"
    )
    print(
        f"    {reps} folds into a fresh tree per round, {rounds} rounds; views have an on_change"
        " callback and follow this client's own edits and regenerations"
    )
    print("    live = tree.apply_one per entry; batch = one tree.apply of all entries")
    print("    delta entries/s = delta entries / time to fold every entry (all types)")
    print()
    print(f"    {'mode':<6} {'views':>5}  {'delta entries/s (median / min / max)':>40}", end="")
    print(f"  {'entries/s':>11}  {'text deltas/s':>13}")
    verdicts: list[Verdict] = []
    scale_entries = entries / conv.delta_entries
    scale_deltas = conv.deltas / conv.delta_entries
    for (mode, views), series in results.items():
        print(
            f"    {mode:<6} {views:>5}  {_mmm(series, 0):>40}"
            f"  {series.median * scale_entries:>11,.0f}  {series.median * scale_deltas:>13,.0f}"
        )
        judged = mode == "live" and views == 1
        verdicts.append(
            Verdict(
                "1",
                f"fold, {mode}, {views} view{'s' if views != 1 else ''}",
                "delta entries/s",
                series,
                "entries/s",
                0,
                f">= {FOLD_TARGET:,}" if judged else "-",
                series.median >= FOLD_TARGET if judged else None,
            )
        )
    return verdicts


def report_delta(
    sizes: Sequence[int], count: int, results: dict[tuple[int, str], DeltaResult], rounds: int
) -> list[Verdict]:
    print()
    print("[2] delta: one output entry of one text delta into the last message of a")
    print(f"    conversation, for a whole reply of {count:,} deltas; {rounds} rounds")
    print("    us/delta = time to fold the reply's deltas / deltas")
    print("    notify = tree.apply_one + the view's on_change callback receiving the change")
    print("    read   = notify + reading view.messages[-1].text after every delta")
    print()
    head = "us/delta (median / min / max)"
    print(f"    {'messages':>8}  {'view':<33} {'notify ' + head:>36}  {'read ' + head:>34}")
    verdicts: list[Verdict] = []
    for (size, kind), result in results.items():
        read = _mmm(result.read, 2) if result.read.values else "-"
        print(
            f"    {size:>8,}  {DELTA_VIEW_LABELS[kind]:<33} {_mmm(result.notify, 2):>36}"
            f"  {read:>34}"
        )
        for metric, series in (("notify", result.notify), ("notify + read", result.read)):
            if not series.values:
                continue
            judged = size == 1000 and kind != "none"
            verdicts.append(
                Verdict(
                    "2",
                    f"delta, {size:,} messages, {DELTA_VIEW_LABELS[kind]}",
                    f"{metric} (us/delta)",
                    series,
                    "us",
                    2,
                    f"< {DELTA_TARGET_US:g}" if judged else "-",
                    series.median < DELTA_TARGET_US if judged else None,
                )
            )
    return verdicts


def report_reply(
    size: int, count: int, results: dict[int, DeltaResult], rounds: int
) -> list[Verdict]:
    print()
    print(f"[3] reply: as [2], on {size:,} messages with the whole conversation shown, when")
    print(f"    the streaming reply already holds N text chunks; {count:,} timed deltas;", end="")
    print(f" {rounds} rounds")
    print()
    head = "us/delta (median / min / max)"
    print(f"    {'N chunks':>8}  {'notify ' + head:>36}  {'read ' + head:>34}")
    verdicts: list[Verdict] = []
    for prefill, result in results.items():
        print(f"    {prefill:>8,}  {_mmm(result.notify, 2):>36}  {_mmm(result.read, 2):>34}")
        for metric, series in (("notify", result.notify), ("notify + read", result.read)):
            verdicts.append(
                Verdict(
                    "3",
                    f"reply holding {prefill:,} chunks, {size:,} messages, whole view",
                    f"{metric} (us/delta)",
                    series,
                    "us",
                    2,
                    "-",
                    None,
                )
            )
    return verdicts


def report_targets(verdicts: list[Verdict], rounds: int) -> None:
    print()
    print(f"Targets (judged on the median of {rounds} round{'s' if rounds != 1 else ''}):")
    for v in verdicts:
        if v.passed is None:
            continue
        print(
            f"  {v.result}  [{v.number}] {v.label}: {v.metric} {v.show(v.series.median)}"
            f" (target {v.target} {v.unit})"
        )
    print("  (target [1] applies to the live mode, one entry at a time; batch is reported only)")


def render_table(verdicts: list[Verdict], rounds: int) -> str:
    lines = [
        f"| # | scenario | metric | median of {rounds} | min | max | target | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        s = v.series
        lines.append(
            f"| {v.number} | {v.label} | {v.metric} | {v.show(s.median)} | {v.show(s.min)}"
            f" | {v.show(s.max)} | {v.target} | {v.result} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measurement")
    parser.add_argument("--quick", action="store_true", help="less work per round (smoke run)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated content")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--unkeyed", action="store_true", help="outputs without resend keys (older writers)"
    )
    args = parser.parse_args(argv)
    global KEYED
    KEYED = not args.unkeyed
    rounds = max(args.rounds, 1)
    reps = 2 if args.quick else 10
    count = 200 if args.quick else 500
    timed = 100 if args.quick else 200
    sizes = (100, 1000, 5000)
    prefills = (100, 1000, 4000)

    print(f"bench/fold.py: the conversation fold (no Redis); {rounds} rounds", end="")
    print(" (--quick)" if args.quick else "", "(unkeyed)" if args.unkeyed else "(keyed)")
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")

    conv = build_conversation(args.seed)
    fold = scenario_fold(conv, rounds, reps)
    delta = scenario_delta(sizes, count, rounds, args.seed)
    reply = scenario_reply(1000, prefills, timed, rounds, args.seed)

    verdicts = report_fold(conv, fold, rounds, reps)
    verdicts += report_delta(sizes, count, delta, rounds)
    verdicts += report_reply(1000, timed, reply, rounds)
    report_targets(verdicts, rounds)
    print()
    print("Markdown summary (for docs/performance.md):")
    print()
    print(render_table(verdicts, rounds))
    missed = [v for v in verdicts if v.passed is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
