"""The shape of a Tree: message order, sibling groups, and what each message follows.

Kept by the tree and shared by its views. Live conversations mostly grow at the end (a new
input, a run's first message), so those changes are appended in O(1); anything else (a
sibling, an echo, an entry older than the newest, a retracted optimistic input) rebuilds the
whole shape, which is O(n log n) and rare. Deltas never touch it.

Sibling groups:
- edits: an input with `fork-of` joins the group of the input it replaces, followed
  transitively to the group's root, as long as the parent is the same. A `fork-of` cycle
  resolves to its oldest member as root; a dangling target leaves the input a root of its own
  (and the group re-forms when the target arrives).
- regenerations: the runs answering the same message (their anchor) that have a message. A
  run joins its group with its first message: until then (and for good, if it produces
  none: rejected, failed, lost early) it has no alternative to show, and a view that
  selected it would show nothing where an answer stood.
Groups list their members oldest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .message import EntryKey

if TYPE_CHECKING:
    from .runs import RunNode
    from .tree import Tree

__all__ = ["GroupKey", "Structure"]

GroupKey = tuple[str, str]
"""("edit", root input message id) or ("regen", anchor message id)."""


class Structure:
    def __init__(self, tree: Tree) -> None:
        self._tree = tree
        self.key: dict[str, EntryKey] = {}
        #: Every placed message id, oldest first.
        self.order: list[str] = []
        self.group_of_input: dict[str, GroupKey] = {}
        self.group_of_run: dict[str, GroupKey] = {}
        self.members: dict[GroupKey, list[str]] = {}
        #: For each message: the message it follows (for visibility)...
        self.up: dict[str, str | None] = {}
        #: ...and its group with the member that stands for it (an input id or a run id).
        self.group: dict[str, tuple[GroupKey, str] | None] = {}
        #: Bumped by every rebuild.
        self.version = 0

    def rebuild(self) -> None:
        tree = self._tree
        inputs, runs = tree.input_nodes, tree.run_nodes
        self.version += 1
        key = self.key = {mid: node.key for mid, node in inputs.items()}
        for run in runs.values():
            for message_id in run.messages:
                key[message_id] = tree.message_key(message_id)
        self.order = sorted(key, key=key.__getitem__)
        self.group_of_input, self.group_of_run, self.members = {}, {}, {}
        self.up, self.group = {}, {}
        for message_id, node in inputs.items():
            group = ("edit", self._root(message_id))
            self.group_of_input[message_id] = group
            self.members.setdefault(group, []).append(message_id)
            self.up[message_id] = node.event.parent
            self.group[message_id] = (group, message_id)
        run_keys: dict[str, EntryKey] = {}
        for run in runs.values():
            group = self._run_group(run)
            if group is not None:
                self.members.setdefault(group, []).append(run.run_id)
                run_keys[run.run_id] = run.key
            for message_id in run.messages:
                self.up[message_id] = run.anchor
                self.group[message_id] = (group, run.run_id) if group else None
        for group, members in self.members.items():
            members.sort(key=key.__getitem__ if group[0] == "edit" else run_keys.__getitem__)

    def _run_group(self, run: RunNode) -> GroupKey | None:
        anchor = run.anchor
        if anchor is None or not run.messages:
            return None
        group = ("regen", anchor)
        self.group_of_run[run.run_id] = group
        return group

    # -- appends: True when done, False when only a rebuild is right --------------------------

    def _is_last(self, key: EntryKey) -> bool:
        return not self.order or key > self.key[self.order[-1]]

    def append_input(self, message_id: str) -> bool:
        node = self._tree.input_nodes[message_id]
        if not self._is_last(node.key) or node.event.fork_of is not None:
            return False
        if message_id in self._tree.fork_targets:
            return False  # it completes someone's fork-of chain: groups change
        group = ("edit", message_id)
        self.key[message_id] = node.key
        self.order.append(message_id)
        self.group_of_input[message_id] = group
        self.members[group] = [message_id]
        self.up[message_id] = node.event.parent
        self.group[message_id] = (group, message_id)
        return True

    def start_run(self, run: RunNode) -> bool:
        # A run joins its group with its first message: a start alone changes no shape,
        # unless it moves messages placed by their own `parent` until now.
        return not run.messages

    def append_run_message(self, run: RunNode, message_id: str) -> bool:
        key = self._tree.message_key(message_id)
        if not self._is_last(key):
            return False
        group = self.group_of_run.get(run.run_id)
        if group is None:  # the run's first message: the run joins its group
            if run.anchor is None:
                return False
            group = ("regen", run.anchor)
            if self.members.get(group):
                return False  # a sibling run: views may select it
            self.group_of_run[run.run_id] = group
            self.members[group] = [run.run_id]
        elif run.messages[0] == message_id:
            return False  # a new first message: the run's place may change
        self.key[message_id] = key
        self.order.append(message_id)
        self.up[message_id] = run.anchor
        self.group[message_id] = (group, run.run_id)
        return True

    def _root(self, message_id: str) -> str:
        inputs = self._tree.input_nodes
        path: list[str] = []
        seen: set[str] = set()
        current = message_id
        while True:
            path.append(current)
            seen.add(current)
            node = inputs[current]
            target = node.event.fork_of
            if target is None or target not in inputs:
                return current
            if inputs[target].event.parent != node.event.parent:
                return current
            if target in seen:  # a cycle: its oldest member is the root for all of them
                cycle = path[path.index(target) :]
                return min(cycle, key=lambda mid: inputs[mid].key)
            current = target
