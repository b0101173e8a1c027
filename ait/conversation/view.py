"""A View: one window onto a Tree, with its own branch selection and pagination.

```python
view = View(tree, window=50)
view.messages                        # the selected branch, newest `window` messages
view.siblings(mid); view.select(mid, 1)
view.reveal_older(20); view.has_older
view.on_change(lambda change: ...)   # or: async for change in view.changes(): ...
```

What is shown: every message of the tree, in entry order, except those on branches the view
has not selected. A message is shown when it is the selected member of its sibling group
(if it has siblings) and the message it follows is shown too. Messages that merely share a
parent without being forks of one another (two inputs sent at once) are all shown.

Selection rules (selection.py keeps them):
- by default a group shows its newest member;
- a group this view is showing keeps showing the same member when another client adds a
  sibling (the branch is pinned);
- this view's own edit selects the new sibling at once; its own regenerate selects the new
  run when that run has its first message (a run without a message is no alternative: it
  has nothing to show), unless this view chose in that group since it asked;
- a run started again for the same input (an agent restarted a lost run) replaces it: a
  view whose choice in the group is the replaced run moves to the replacement when that
  has its first message; a view that chose another alternative stays, and the replaced
  run stays selectable;
- a selection whose member disappeared falls back to the newest;
- views never share selection.

Changes: one per batch at most, and only when what is shown changed: the list
(`structure`), or some shown messages, whose content or sibling arrows changed (`content`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from ..errors import UsageError
from .message import Message
from .selection import Selection
from .structure import GroupKey, Structure
from .tree import Tree

__all__ = ["View", "ViewChange", "ViewChanges"]

LoadOlder = Callable[[int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ViewChange:
    """What changed in a view: `structure` (re-render the list), or `content`: the messages
    named must be drawn again (their content changed, or they gained or lost a sibling)."""

    kind: Literal["structure", "content"]
    message_ids: tuple[str, ...] = ()


class View:
    """A window onto `tree`. See the module docstring for what it shows.

    Args:
        tree: the tree to show.
        window: how many of the newest messages to show at first.
        load_older: called with a count when the view needs older history than the tree
            holds (the client session fetches and folds it); see `load_older()`.
    """

    def __init__(self, tree: Tree, *, window: int = 50, load_older: LoadOlder | None = None):
        if window < 1:
            raise UsageError(f"a view's window must be at least 1 message, not {window}")
        self.tree = tree
        self.initial_window = window
        self._load_older = load_older
        self._selection = Selection(tree)
        self._visible: list[str] = []
        #: The oldest shown message: the window starts at its entry, wherever that moves
        #: (older entries of it arrive, or an optimistic input is echoed).
        self._from_id: str | None = None
        self._shown: list[str] = []
        self._index: dict[str, int] = {}
        self._cache: list[Message] | None = None
        self._dirty: set[str] = set()
        self._callbacks: list[Callable[[ViewChange], None]] = []
        self._streams: list[ViewChanges] = []
        self._closed = False
        self._vis: dict[str, bool] = {}
        #: Each shown alternative's (selected index, sibling count): what its arrows draw.
        self._arrows: dict[str, tuple[int, int]] = {}
        tree.add_listener(self)
        self._recompute()
        self._redraw_arrows()

    def close(self) -> None:
        """Stop following the tree. Idempotent. A closed view still reads as it stood, but
        places nothing: its write helpers raise `UsageError` (its last message is stale)."""
        if not self._closed:
            self._closed = True
            self.tree.remove_listener(self)
            for stream in list(self._streams):
                stream.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _require_open(self, action: str) -> None:
        if self._closed:
            raise UsageError(f"unable to {action}; the view is closed")

    # -- what is shown -----------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """The shown messages of the selected branch, oldest first."""
        if self._cache is None:
            self._cache = [self.tree.snapshot(mid) for mid in self._shown]
            self._dirty.clear()
        elif self._dirty:
            for mid in self._dirty:
                position = self._index.get(mid)
                if position is not None:
                    self._cache[position] = self.tree.snapshot(mid)
            self._dirty.clear()
        return list(self._cache)

    @property
    def message_ids(self) -> list[str]:
        return list(self._shown)

    @property
    def last_message_id(self) -> str | None:
        """The newest message of the selected branch (the parent of the next send)."""
        return self._visible[-1] if self._visible else None

    @property
    def has_older(self) -> bool:
        """True when older messages exist: folded but not shown, or not yet read."""
        return len(self._shown) < len(self._visible) or not self.tree.history_complete

    def reveal_older(self, count: int) -> int:
        """Show up to `count` more of the older messages already folded; return how many."""
        hidden = len(self._visible) - len(self._shown)
        revealed = min(max(count, 0), hidden)
        if revealed:
            self._from_id = self._visible[hidden - revealed]
            self._refresh_shown()
            self._redraw_arrows()
            self._emit(ViewChange("structure", tuple(self._shown)))
        return revealed

    async def load_older(self, count: int) -> int:
        """Show `count` more older messages, asking the session for older history if needed.

        Returns how many were revealed (fewer when the channel's beginning was reached).
        """
        revealed = self.reveal_older(count)
        attempts = 0
        while revealed < count and self._load_older is not None and not self.tree.history_complete:
            attempts += 1
            before = len(self.tree)
            await self._load_older(count - revealed)
            revealed += self.reveal_older(count - revealed)
            if len(self.tree) == before and attempts > 3:
                break  # pages without messages (only lifecycle entries): give up politely
        return revealed

    # -- branches ----------------------------------------------------------------------------

    def siblings(self, message_id: str) -> list[Message]:
        """The alternatives of a message, oldest first: edits of an input, or the first
        message of each regenerated run of a run's first message. A message without
        siblings gives itself alone, and so does a later message of a run: its run's
        alternatives are those of the run's first message."""
        group = self._group_of(message_id)
        if group is None:
            return [self.tree.snapshot(message_id)]
        return [self.tree.snapshot(mid) for mid in self._representatives(group)]

    def selected_index(self, message_id: str) -> int:
        """The index in `siblings(message_id)` of the alternative this view shows."""
        group = self._group_of(message_id)
        if group is None:
            return 0
        # Members and alternatives go one to one: a run is a member once it has a message.
        return self.structure.members[group].index(self._selection.choice(group))

    def select(self, message_id: str, index: int) -> None:
        """Show alternative `index` of `siblings(message_id)` from now on."""
        group = self._group_of(message_id)
        representatives = self._representatives(group) if group else [message_id]
        if not 0 <= index < len(representatives):
            raise UsageError(
                f"no sibling {index} of message {message_id!r}; it has {len(representatives)}"
            )
        if group is None:
            return
        chosen = representatives[index]
        shown_before = len(self._shown)
        self._selection.choose(group, self.structure.members[group][index])
        changed = self._recompute()
        if chosen not in self._index and chosen in self._visible:
            # The branch chosen is older than the window's start (the window is anchored on
            # an entry of the branch left): show from the chosen message on, and at least
            # as many messages as were shown before.
            count = max(self.initial_window, shown_before)
            start = min(self._visible.index(chosen), max(0, len(self._visible) - count))
            self._from_id = self._visible[start]
            changed = self._refresh_shown() or changed
        self._report(changed, self._redraw_arrows())

    # -- helpers for writes (the client session uses them) -----------------------------------

    def send_parent(self) -> str | None:
        """The parent of a new message sent from this view: its last message."""
        self._require_open("send")
        return self.last_message_id

    def edit_target(self, message_id: str) -> tuple[str | None, str]:
        """(parent, fork_of) of an edit of input `message_id`."""
        self._require_open("edit")
        node = self.tree.input_nodes.get(message_id)
        if node is None:
            raise UsageError(f"unable to edit {message_id!r}: it is not an input message")
        return node.event.parent, message_id

    def regenerate_target(self, message_id: str) -> tuple[str, str | None]:
        """(run id, parent) of a regeneration of output `message_id`: the run to redo and
        the message it answered."""
        self._require_open("regenerate")
        run_id = self.tree.run_of(message_id)
        if run_id is None:
            raise UsageError(f"unable to regenerate {message_id!r}: it is not an agent's message")
        return run_id, self.tree.run_nodes[run_id].anchor

    def expect_edit(self, new_message_id: str) -> None:
        """Select the edit `new_message_id` (this view's own) as soon as it is in the tree."""
        self._require_open("edit")
        self._selection.expect_edit(new_message_id)
        self._report(self._recompute(), self._redraw_arrows())

    def expect_regenerate(self, request_message_id: str) -> None:
        """Select the run started for regenerate request `request_message_id` when it has its
        first message, unless this view chooses another alternative of it meanwhile."""
        self._require_open("regenerate")
        self._selection.expect_regenerate(request_message_id)
        self._report(self._recompute(), self._redraw_arrows())

    # -- changes -----------------------------------------------------------------------------

    def on_change(self, callback: Callable[[ViewChange], None]) -> Callable[[], None]:
        """Call `callback` on every change of what this view shows; returns an unsubscribe."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def changes(self, buffer: int = 256) -> ViewChanges:
        """An async iterator of changes (`async with view.changes() as changes: ...`).

        When the consumer falls `buffer` changes behind, the queued changes collapse into
        one `structure` change: re-render everything, nothing is lost.
        """
        stream = ViewChanges(self, buffer)
        self._streams.append(stream)
        return stream

    def _emit(self, change: ViewChange) -> None:
        for callback in list(self._callbacks):
            callback(change)
        for stream in self._streams:
            stream.push(change)

    # -- the tree's side ---------------------------------------------------------------------

    def tree_changed(self, reshaped: bool, appended: list[str], messages: set[str]) -> None:
        if reshaped or self._from_id is None:  # the first messages seen set the window too
            restructured = self._recompute()
            redraw = self._redraw_arrows()
        else:  # appended in groups of their own: no shown message gained a sibling
            shown = [mid for mid in appended if self._append(mid)]
            restructured = bool(shown)
            redraw = self._redraw_arrows(shown)
        index = self._index
        touched = {mid for mid in messages if mid in index}
        self._dirty.update(touched)
        self._report(restructured, touched | redraw)

    def _report(self, restructured: bool, redraw: set[str]) -> None:
        """Emit one change: the list when it changed, else the shown messages to draw again
        (their content changed, or they gained or lost a sibling); nothing otherwise."""
        if restructured:
            self._emit(ViewChange("structure", tuple(self._shown)))
        elif redraw:
            index = self._index
            self._emit(ViewChange("content", tuple(sorted(redraw, key=index.__getitem__))))

    def _redraw_arrows(self, message_ids: list[str] | None = None) -> set[str]:
        """Note the arrows of the shown alternatives (all of them, or `message_ids`, newly
        shown); return the shown messages whose arrows changed."""
        before = self._arrows
        if message_ids is None:
            self._arrows, message_ids = {}, self._shown
        changed: set[str] = set()
        for mid in message_ids:
            group = self._group_of(mid)
            if group is None:
                continue
            members = self.structure.members[group]
            arrows = (members.index(self._selection.choice(group)), len(members))
            if before.get(mid, arrows) != arrows:
                changed.add(mid)
            self._arrows[mid] = arrows
        return changed

    @property
    def structure(self) -> Structure:
        return self.tree.structure

    def _append(self, message_id: str) -> bool:
        """A message placed at the end of the order, in a group of its own: shown if the
        message it follows is. True when it is shown."""
        structure = self.structure
        up = structure.up.get(message_id)
        shown = self._vis.get(up, True) if up is not None else True
        self._vis[message_id] = shown
        if not shown:
            return False
        owner = structure.group.get(message_id)
        if owner is not None:
            self._selection.shown_also(*owner)
        self._visible.append(message_id)
        if self._from_id is None and self._settled(message_id):
            self._from_id = message_id
        self._index[message_id] = len(self._shown)
        self._shown.append(message_id)
        if self._cache is not None:
            self._cache.append(self.tree.snapshot(message_id))
        return True

    def _recompute(self) -> bool:
        """Work out the shown messages again; True if they changed (the caller reports it)."""
        structure = self.structure
        self._selection.settle(structure)
        visible = self._visible_ids(structure)
        displayed: dict[GroupKey, str] = {}
        for mid in visible:
            owner = structure.group.get(mid)
            if owner is not None:
                displayed[owner[0]] = owner[1]
        self._selection.shown(displayed)
        changed = visible != self._visible
        self._visible = visible
        if self._from_id is not None and self._from_id not in structure.key:
            # The oldest shown message is gone (a retracted optimistic input).
            self._from_id = next((m for m in self._shown if m in structure.key), None)
        if self._from_id is None:
            # Anchor the window on the oldest of the newest `window` messages, never on an
            # optimistic one: its place is not known until the channel echoes it, and
            # another client's message may turn out to come before it.
            newest = visible[max(0, len(visible) - self.initial_window) :]
            self._from_id = next((m for m in newest if self._settled(m)), None)
        return self._refresh_shown() or changed

    def _settled(self, message_id: str) -> bool:
        node = self.tree.input_nodes.get(message_id)
        return node is None or node.entry_id is not None

    def _refresh_shown(self) -> bool:
        key = self.structure.key
        start = key.get(self._from_id) if self._from_id is not None else None
        shown = (
            list(self._visible) if start is None else [m for m in self._visible if key[m] >= start]
        )
        if shown == self._shown:
            return False
        self._shown = shown
        self._index = {mid: i for i, mid in enumerate(shown)}
        self._cache = None
        return True

    def _visible_ids(self, structure: Structure) -> list[str]:
        memo: dict[str, bool] = {}
        up, group_of, key = structure.up, structure.group, structure.key
        choices: dict[GroupKey, str] = {}

        def own_ok(mid: str) -> bool:
            owner = group_of.get(mid)
            if owner is None:
                return True
            group, member = owner
            if len(structure.members[group]) < 2:
                return True
            chosen = choices.get(group)
            if chosen is None:
                chosen = choices[group] = self._selection.choice(group)
            return chosen == member

        visible: list[str] = []
        self._vis = memo
        for mid in structure.order:
            # Walk up to a known answer (iteratively: branches can be thousands deep).
            path: list[str] = []
            on_path: set[str] = set()
            current: str | None = mid
            while current is not None and current not in memo and current in key:
                if current in on_path:
                    break
                path.append(current)
                on_path.add(current)
                current = up.get(current)
            result = memo.get(current, True) if current is not None else True
            for node in reversed(path):
                result = own_ok(node) and result
                memo[node] = result
            if memo[mid]:
                visible.append(mid)
        return visible

    def _group_of(self, message_id: str) -> GroupKey | None:
        """The sibling group whose alternative `message_id` is; None when it is no
        alternative of anything: it has no group, or it is a later message of a run (the
        branch point is the run's first message; the rest come with it)."""
        owner = self.structure.group.get(message_id)
        if owner is None:
            if not self.tree.is_placed(message_id):
                raise UsageError(f"no message {message_id!r} in this conversation")
            return None
        group, member = owner
        if group[0] == "regen" and self.tree.run_nodes[member].messages[0] != message_id:
            return None
        return group

    def _representatives(self, group: GroupKey) -> list[str]:
        """The alternatives of a group, one per member: its inputs, or its runs' first
        messages (a run is a member once it has one)."""
        members = self.structure.members[group]
        if group[0] == "edit":
            return list(members)
        runs = self.tree.run_nodes
        return [runs[run_id].messages[0] for run_id in members]


class ViewChanges:
    """Changes of one view as an async iterator. Get one with `view.changes()`."""

    def __init__(self, view: View, buffer: int) -> None:
        self._view = view
        self._buffer = max(buffer, 1)
        self._queue: deque[ViewChange] = deque()
        self._wake = anyio.Event()
        self._closed = False

    def push(self, change: ViewChange) -> None:
        if len(self._queue) >= self._buffer:
            self._queue.clear()
            change = ViewChange("structure", tuple(self._view.message_ids))
        self._queue.append(change)
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self in self._view._streams:  # pyright: ignore[reportPrivateUsage]
            self._view._streams.remove(self)  # pyright: ignore[reportPrivateUsage]

    async def __aenter__(self) -> ViewChanges:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> ViewChanges:
        return self

    async def __anext__(self) -> ViewChange:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            await self._wake.wait()
            self._wake = anyio.Event()
        return self._queue.popleft()
