"""What the channel says of a run, read back from its entries: its state, its messages and
tool calls (`run_history`), what happened since it suspended (`since_suspend`), and which
answers a resume takes (`resume_answers`).

A resumed run is rebuilt from these alone, never from an agent's memory, so any agent in
any process can resume it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from ..bus import Channel, Entry
from ..events import Cancel, Input, Output, RunEnd, RunResume, RunStart, RunSuspend

__all__ = [
    "SCAN_ENTRIES",
    "RunHistory",
    "answered_calls",
    "input_answered",
    "resume_answers",
    "run_history",
    "since_suspend",
]

# How far back a search of recent history goes: this many entries.
SCAN_ENTRIES = 20_000


@dataclass
class RunHistory:
    """A run as the channel tells it (see `AgentSession.run_history`)."""

    #: "active", "suspended" or "ended"; None when the channel has no lifecycle event of it.
    state: str | None = None
    #: The entry id of the lifecycle event `state` comes from.
    state_id: str | None = None
    #: Its messages in the order they began, and the parent each was published with.
    messages: list[str] = field(default_factory=list[str])
    parents: dict[str, str] = field(default_factory=dict[str, str])
    #: Tool call id -> the message holding the call.
    calls: dict[str, str] = field(default_factory=dict[str, str])
    #: When suspended: the tool calls its `run.suspend` waits for (empty: any answer).
    awaiting: tuple[str, ...] = ()
    #: The event ids of the answers its resumes took.
    taken: set[str] = field(default_factory=set[str])
    #: Its `run.start`, and the entry id of the input it names (or, when that input is
    #: not in the page read last, of the `run.start`): where cancels of it may begin.
    start: RunStart | None = None
    origin_id: str | None = None
    #: The cancels read on the way (every one after the `run.start`), newest first: which
    #: of them target the run is for `cancel_applies` to say.
    cancels: list[tuple[str, Cancel]] = field(default_factory=list[tuple[str, Cancel]])

    def in_order(self) -> RunHistory:
        """Order `messages` (gathered newest entry first) by each message's first entry."""
        self.messages = list(dict.fromkeys(reversed(self.messages)))
        return self


_STATES: dict[type, str] = {
    RunStart: "active",
    RunResume: "active",
    RunSuspend: "suspended",
    RunEnd: "ended",
}


async def run_history(channel: Channel, run_id: str) -> RunHistory:
    """What the channel says of a run: its state now, its messages, its tool calls.

    Reads recent history backward until the run's start (or 20,000 entries).
    """
    found = RunHistory()
    before: str | None = None
    scanned = 0
    while scanned < SCAN_ENTRIES:
        page = await channel.history(before, limit=500)
        for index in range(len(page) - 1, -1, -1):
            entry_id, event = page[index]
            if isinstance(event, RunStart | RunResume | RunSuspend | RunEnd):
                if event.run_id == run_id and found.state is None:
                    found.state, found.state_id = _STATES[type(event)], entry_id
                    if isinstance(event, RunSuspend):
                        found.awaiting = event.awaiting
                if isinstance(event, RunResume) and event.run_id == run_id:
                    found.taken.update(event.answers)
                if isinstance(event, RunStart) and event.run_id == run_id:
                    found.start, found.origin_id = event, entry_id
                    _find_origin(found, event, page[:index])
                    return found.in_order()
            elif isinstance(event, Cancel):
                found.cancels.append((entry_id, event))
            elif isinstance(event, Output) and event.run_id == run_id:
                found.messages.append(event.message_id)
                found.parents[event.message_id] = event.parent  # the oldest entry wins
                for item in cast(list[object], event.payload):
                    call_id = _tool_call_id(item)
                    if call_id is not None:
                        found.calls[call_id] = event.message_id
        scanned += len(page)
        if len(page) < 500:
            break
        before = page[0][0]
    return found.in_order()


def _find_origin(found: RunHistory, start: RunStart, older: list[Entry]) -> None:
    """Look for the input `start` names among the `older` entries of its page (usually just
    before it), with the cancels between them."""
    for entry_id, event in reversed(older):
        if isinstance(event, Input) and event.event_id == start.input_event_id:
            found.origin_id = entry_id
            return
        if isinstance(event, Cancel):
            found.cancels.append((entry_id, event))


async def since_suspend(
    channel: Channel, run_id: str, after: str
) -> tuple[RunHistory, list[tuple[str, Input]]]:
    """What happened to `run_id` after entry `after` (its suspend): a `RunHistory` with
    the `state` its newest lifecycle event gives it (None: nothing happened) and the
    answers `taken` by its resumes; and the answers to it (inputs naming it) with their
    entry ids, in channel order."""
    found = RunHistory()
    answers: list[tuple[str, Input]] = []
    while True:
        page = await channel.read(after=after, count=500)
        for entry_id, event in page:
            if isinstance(event, RunStart | RunResume | RunSuspend | RunEnd):
                if event.run_id == run_id:
                    found.state, found.state_id = _STATES[type(event)], entry_id
                    if isinstance(event, RunResume):
                        found.taken.update(event.answers)
            elif isinstance(event, Input) and event.run_id == run_id:
                answers.append((entry_id, event))
        if len(page) < 500:
            return found, answers
        after = page[-1][0]


async def input_answered(
    channel: Channel, input_entry: str, input_event_id: str
) -> tuple[str, str] | None:
    """The run started for input `input_event_id` (at entry `input_entry`) and its state
    now (`active`, `suspended` or `ended`), read forward from the input (outputs left
    undecoded, up to SCAN_ENTRIES entries); None when no run started for it."""
    found: tuple[str, str] | None = None
    cursor, scanned = input_entry, 0
    while scanned < SCAN_ENTRIES:
        page, last = await channel.scan(f"({cursor}", "+", 500, skip=("output",))
        for _, event in page:
            if isinstance(event, RunStart) and event.input_event_id == input_event_id:
                found = found or (event.run_id, "active")
            elif (
                isinstance(event, RunResume | RunSuspend | RunEnd)
                and found is not None
                and event.run_id == found[0]
            ):
                found = (found[0], _STATES[type(event)])
        if last is None:
            break
        # Counted in pages of 500: the outputs skipped are entries read too.
        scanned += 500
        cursor = last
    return found


def answered_calls(payload: object) -> set[str]:
    """The tool calls an answer's payload answers: its results, errors and approvals."""
    found: set[str] = set()
    if not isinstance(payload, list):
        return found
    for item in cast(list[object], payload):
        if isinstance(item, dict):
            fields = cast(dict[str, Any], item)
            if fields.get("type") in _ANSWER_TYPES and isinstance(fields.get("id"), str):
                found.add(fields["id"])
    return found


_ANSWER_TYPES = frozenset({"tool-output-available", "tool-output-error", "tool-approval-response"})


def resume_answers(
    answers: list[tuple[str, Input]], awaiting: tuple[str, ...]
) -> tuple[list[tuple[str, Input]], set[str]]:
    """The answers a resume takes, and the awaited calls that have none yet.

    Taken, in channel order: the first answer, and each later one that is the first answer
    to some call (an answer that only repeats earlier ones is not: every fold keeps a
    call's first answer and shows that one).
    """
    answered: set[str] = set()
    taken: list[tuple[str, Input]] = []
    for entry_id, event in answers:
        calls = answered_calls(event.payload)
        if not taken or calls - answered:
            taken.append((entry_id, event))
        answered |= calls
    return taken, set(awaiting) - answered


def _tool_call_id(item: object) -> str | None:
    """The call id of a `tool-input-*` codec event on the wire, else None."""
    if not isinstance(item, dict):
        return None
    fields = cast(dict[str, Any], item)
    kind, call_id = fields.get("type"), fields.get("id")
    if isinstance(kind, str) and kind.startswith("tool-input") and isinstance(call_id, str):
        return call_id
    return None
