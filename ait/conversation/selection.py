"""One view's choices in the sibling groups of a tree, and the rules that make them. Pure.

A `View` asks `choice(group)` for the member it shows of each group, and calls `settle()`
before it works out what is shown, `shown()` after. The rules, in the order `settle()`
applies them:
- expectations: this view's own edit is chosen once it is in the tree; its own regenerate
  once the run started for the request has a message, unless this view chose in that
  group since it asked;
- restarts: a run that joined a group since the last look and answers again the input of
  the run chosen there (an agent restarted a lost run) is chosen in its place;
- pins: a group shown with its default member keeps that member when a sibling comes.
A group without a choice shows its newest member; a choice whose member is gone falls back
to the newest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .structure import GroupKey, Structure

if TYPE_CHECKING:
    from .runs import RunNode
    from .tree import Tree

__all__ = ["Selection"]


class Selection:
    def __init__(self, tree: Tree) -> None:
        self._tree = tree
        self._explicit: dict[GroupKey, str] = {}
        #: The member shown of each group the view shows (as of its last look).
        self._displayed: dict[GroupKey, str] = {}
        self._edits: set[str] = set()  # own edits expected: input message ids
        self._regenerations: dict[str, int] = {}  # own requests expected -> `_choices` then
        self._choices = 0  # choose() calls so far: orders choices and expectations
        self._chosen_at: dict[GroupKey, int] = {}  # group -> `_choices` at its last choose()
        self._known_runs: set[str] = set()  # runs that were members at the last look

    def choice(self, group: GroupKey) -> str:
        """The member of `group` the view shows (`group` has members)."""
        members = self._tree.structure.members[group]
        chosen = self._explicit.get(group)
        if chosen is not None and chosen in members:
            return chosen
        if chosen is not None:
            del self._explicit[group]  # stale: the member is gone; fall back to the newest
        return members[-1]

    def choose(self, group: GroupKey, member: str) -> None:
        """The view's user chose `member` of `group`."""
        self._choices += 1
        self._chosen_at[group] = self._choices
        self._explicit[group] = member

    def expect_edit(self, message_id: str) -> None:
        self._edits.add(message_id)

    def expect_regenerate(self, request_message_id: str) -> None:
        self._regenerations[request_message_id] = self._choices

    def settle(self, structure: Structure) -> None:
        """Apply the rules (see the module docstring) to what changed since the last look."""
        for message_id in list(self._edits):
            group = structure.group_of_input.get(message_id)
            if group is not None:
                self._explicit[group] = message_id
                self._edits.discard(message_id)
        for request, asked_at in list(self._regenerations.items()):
            run = self._tree.run_for_input(request)
            group = structure.group_of_run.get(run.run_id) if run is not None else None
            if run is None or group is None:
                continue  # not started, or no message yet: nothing to show
            del self._regenerations[request]
            if self._chosen_at.get(group, -1) <= asked_at:
                self._explicit[group] = run.run_id
        self._follow_restarts(structure)
        for group, member in self._displayed.items():
            members = structure.members.get(group)
            if group not in self._explicit and members and member in members[:-1]:
                self._explicit[group] = member

    def _follow_restarts(self, structure: Structure) -> None:
        runs = self._tree.run_nodes
        fresh = [run_id for run_id in structure.group_of_run if run_id not in self._known_runs]
        self._known_runs = set(structure.group_of_run)
        for run_id in sorted(fresh, key=lambda r: runs[r].key):
            group = structure.group_of_run[run_id]
            current = self._explicit.get(group) or self._displayed.get(group)
            if current is not None and current in runs and _restarts(runs[run_id], runs[current]):
                self._explicit[group] = run_id

    def shown(self, displayed: dict[GroupKey, str]) -> None:
        """What the view shows now: each group it shows, and the member shown."""
        self._displayed = displayed

    def shown_also(self, group: GroupKey, member: str) -> None:
        """A group of one member the view started to show without a new look."""
        self._displayed[group] = member
        if group[0] == "regen":
            self._known_runs.add(member)


def _restarts(run: RunNode, other: RunNode) -> bool:
    """Whether `run` answers again the very input `other` answered, after it: an agent
    restarting a lost run (`restart_lost`) starts a new run for the same input event."""
    return (
        run is not other
        and run.start is not None
        and other.start is not None
        and run.start.input_event_id == other.start.input_event_id
        and run.key > other.key
    )
