"""Which alternatives a view offers and which it follows: runs that produce no message, the
later messages of a run, restarted runs, and the changes a view reports when a message it
shows gains or loses a sibling."""

from __future__ import annotations

import pytest

import ait
from ait.conversation import Tree, View, ViewChange

from .builders import Chat, Entry, fold, user_input


def answered() -> Chat:
    """u1 -> a1: one complete turn (run r1)."""
    chat = Chat()
    chat.turn("u1", "r1", "a1", "first answer")
    return chat


def one_by_one(tree: Tree, entries: list[Entry]) -> None:
    """Apply entries as a live subscription delivers them."""
    for entry in entries:
        assert tree.apply([entry]) == []


def ids(view: View, message_id: str) -> list[str]:
    return [m.id for m in view.siblings(message_id)]


def answering() -> Chat:
    """u1 -> a1: run r1 has begun its answer, and is still active."""
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.say("r1", "a1", "half an ans", parent="u1")
    return chat


def regenerating(chat: Chat) -> tuple[Tree, View]:
    """`chat` folded, and a view that regenerates a1: its request q1 is in, its run r2 has
    started (without a message yet)."""
    tree = fold(chat.entries)
    view = View(tree)
    view.expect_regenerate("q1")
    for entry in (
        chat.regenerate("q1", "a1", parent="u1"),
        chat.start("r2", "q1", parent="u1", regenerate="a1"),
    ):
        one_by_one(tree, [entry])
        assert view.message_ids[-1] != "u1", "the view lost its answer"
    return tree, view


# -- a run with no message is no alternative ----------------------------------------------


def test_an_own_regeneration_that_produces_nothing_keeps_what_the_view_showed() -> None:
    chat = answered()
    tree, view = regenerating(chat)
    assert view.message_ids == ["u1", "a1"]
    one_by_one(tree, [chat.end("r2", "error", error=("rejected", "another run is active"))])
    assert view.message_ids == ["u1", "a1"]
    assert ids(view, "a1") == ["a1"]
    assert view.selected_index("a1") == 0
    assert View(tree).message_ids == ["u1", "a1"]  # a fresh view: nothing to choose either


def test_a_run_without_a_message_never_hides_the_branch_below() -> None:
    """Another client's regeneration that fails at once: no view loses the turn under it."""
    chat = answered()
    chat.turn("u2", "r2", "a2", "second answer", parent="a1")
    chat.regenerate("q1", "a1", parent="u1", client="bob")
    chat.start("r3", "q1", parent="u1", regenerate="a1", client="bob")
    chat.end("r3", "error", error=("rejected", "another run is active"))
    view = View(fold(chat.entries))
    assert view.message_ids == ["u1", "a1", "u2", "a2"]
    assert ids(view, "a1") == ["a1"]


def test_an_own_regeneration_is_selected_with_its_first_message() -> None:
    chat = answered()
    tree, view = regenerating(chat)
    assert view.message_ids == ["u1", "a1"]  # started, nothing to show yet
    one_by_one(tree, [chat.say("r2", "b1", "second answer", parent="u1")])
    assert view.message_ids == ["u1", "b1"]
    assert (ids(view, "b1"), view.selected_index("b1")) == (["a1", "b1"], 1)


def test_a_choice_made_while_an_own_regeneration_runs_stands() -> None:
    chat = answered()
    chat.regenerate("q0", "a1", parent="u1", client="bob")
    chat.start("r0", "q0", parent="u1", regenerate="a1", client="bob")
    chat.say("r0", "a0", "bob's answer", parent="u1")
    assert View(fold(chat.entries)).message_ids == ["u1", "a0"]
    tree, view = regenerating(chat)
    view.select("a0", 0)  # back to the first answer, before the new one has a word
    one_by_one(tree, [chat.say("r2", "b1", "third answer", parent="u1")])
    assert view.message_ids == ["u1", "a1"]
    assert (ids(view, "a1"), view.selected_index("a1")) == (["a1", "a0", "b1"], 0)


# -- the later messages of a run ----------------------------------------------------------


def test_a_later_message_of_a_run_is_its_own_only_alternative() -> None:
    chat = answering()
    chat.say("r1", "a2", "found it", parent="a1")
    chat.end("r1")
    tree = fold(chat.entries)
    view = View(tree)
    assert view.message_ids == ["u1", "a1", "a2"]
    assert (ids(view, "a2"), view.selected_index("a2")) == (["a2"], 0)
    one_by_one(
        tree,
        [
            chat.regenerate("q1", "a1", parent="u1", client="bob"),
            chat.start("r2", "q1", parent="u1", regenerate="a1", client="bob"),
            chat.say("r2", "b1", "another look", parent="u1"),
        ],
    )
    assert view.message_ids == ["u1", "a1", "a2"]  # pinned
    assert (ids(view, "a1"), view.selected_index("a1")) == (["a1", "b1"], 0)
    assert (ids(view, "a2"), view.selected_index("a2")) == (["a2"], 0)
    view.select("a2", 0)
    with pytest.raises(ait.UsageError, match="no sibling 1 of message 'a2'; it has 1"):
        view.select("a2", 1)
    assert view.message_ids == ["u1", "a1", "a2"]


# -- sibling changes are reported, nothing else -------------------------------------------


@pytest.mark.parametrize("read", [False, True], ids=["unread", "read"])
def test_another_clients_edit_of_a_pinned_message_redraws_that_message(read: bool) -> None:
    chat = answered()
    chat.turn("u2", "r2", "a2", "second answer", parent="a1")
    tree = fold(chat.entries)
    view = View(tree)
    changes: list[ViewChange] = []
    view.on_change(changes.append)
    if read:
        assert len(view.messages) == 4
    before = len(chat.entries)
    chat.user("u2b", "edited", parent="a1", fork_of="u2", client="bob")
    chat.start("r3", "u2b", parent="u2b", client="bob")
    chat.say("r3", "a3", "answer to the edit", parent="u2b")
    one_by_one(tree, chat.entries[before:])
    assert changes == [ViewChange("content", ("u2",))]
    assert view.message_ids == ["u1", "a1", "u2", "a2"]
    assert (ids(view, "u2"), view.selected_index("u2")) == (["u2", "u2b"], 0)


@pytest.mark.parametrize("read", [False, True], ids=["unread", "read"])
def test_an_edit_of_a_message_outside_the_window_is_silent(read: bool) -> None:
    chat = answered()
    chat.turn("u2", "r2", "a2", "second answer", parent="a1")
    tree = fold(chat.entries)
    view = View(tree, window=2)
    changes: list[ViewChange] = []
    view.on_change(changes.append)
    if read:
        assert len(view.messages) == 2
    one_by_one(tree, [chat.user("u1b", "edited", fork_of="u1", client="bob")])
    assert changes == []
    assert view.message_ids == ["u2", "a2"]


def test_a_shown_message_that_gains_or_loses_a_sibling_is_redrawn() -> None:
    chat = answered()
    chat.turn("u2", "r2", "a2", "second answer", parent="a1")
    tree = fold(chat.entries)
    mine, other = View(tree), View(tree)
    changes: list[ViewChange] = []
    mine.on_change(changes.append)
    other.expect_edit("draft")
    tree.add_optimistic(user_input("draft", "never published", parent="a1", fork_of="u2"))
    assert other.message_ids == ["u1", "a1", "draft"]
    assert changes == [ViewChange("content", ("u2",))]
    assert (ids(mine, "u2"), mine.selected_index("u2")) == (["u2", "draft"], 0)
    tree.remove_optimistic("ev-draft")  # the other view's publish failed
    assert changes == [ViewChange("content", ("u2",))] * 2
    assert ids(mine, "u2") == ["u2"]
    assert mine.message_ids == ["u1", "a1", "u2", "a2"]


def test_a_sibling_that_does_not_touch_what_is_shown_reports_nothing() -> None:
    """A choice made again, and a run on a branch the view does not show."""
    chat = answered()
    chat.turn("u2", "r2", "a2", "second answer", parent="a1")
    chat.user("u2b", "edited", parent="a1", fork_of="u2")
    tree = fold(chat.entries)
    view = View(tree)
    view.select("u2b", 0)
    changes: list[ViewChange] = []
    view.on_change(changes.append)
    view.select("u2", 0)  # the same choice again: nothing changed
    assert changes == []
    one_by_one(
        tree, [chat.start("r3", "u2b", parent="u2b"), chat.say("r3", "b", "x", parent="u2b")]
    )
    assert changes == []


# -- restarted runs -----------------------------------------------------------------------


def lost(chat: Chat, run_id: str = "r1") -> list[Entry]:
    """The worker of `run_id` died: another worker ends it `agent-lost`."""
    return [chat.end(run_id, "error", error=("agent-lost", "the agent stopped responding"))]


def test_a_view_follows_a_restarted_run() -> None:
    chat = answering()
    tree = fold(chat.entries)
    view = View(tree)
    one_by_one(tree, [*lost(chat), chat.start("r2", "u1", parent="u1")])
    assert view.message_ids == ["u1", "a1"]  # the restart has nothing to show yet
    one_by_one(tree, [chat.say("r2", "b1", "a whole answer", parent="u1")])
    assert view.message_ids == ["u1", "b1"]
    assert (ids(view, "b1"), view.selected_index("b1")) == (["a1", "b1"], 1)


def test_the_lost_run_stays_selectable_after_its_restart() -> None:
    chat = answering()
    tree = fold(chat.entries)
    view = View(tree)
    one_by_one(
        tree,
        [*lost(chat), chat.start("r2", "u1", parent="u1"), chat.say("r2", "b1", "a", parent="u1")],
    )
    view.select("b1", 0)
    one_by_one(
        tree,
        [
            chat.say("r2", "b1", " whole answer", parent="u1"),
            # another sibling (not a restart) rebuilds the shape: the choice stands
            chat.regenerate("q1", "b1", parent="u1", client="bob"),
            chat.start("r3", "q1", parent="u1", regenerate="b1", client="bob"),
            chat.say("r3", "c1", "bob's answer", parent="u1"),
        ],
    )
    assert view.message_ids == ["u1", "a1"]
    assert view.selected_index("a1") == 0


def test_a_view_that_chose_another_branch_does_not_follow_a_restart() -> None:
    chat = Chat()
    chat.turn("u1", "r0", "a0", "the first answer")
    chat.regenerate("q1", "a0", parent="u1")
    chat.start("r1", "q1", parent="u1", regenerate="a0")
    chat.say("r1", "a1", "half an ans", parent="u1")
    tree = fold(chat.entries)
    view = View(tree)
    assert view.message_ids == ["u1", "a1"]
    view.select("a1", 0)
    one_by_one(
        tree,
        [
            *lost(chat),
            chat.start("r2", "q1", parent="u1", regenerate="a0"),
            chat.say("r2", "b1", "a whole answer", parent="u1"),
        ],
    )
    assert view.message_ids == ["u1", "a0"]
    assert ids(view, "a0") == ["a0", "a1", "b1"]


def test_the_restart_of_a_run_the_view_does_not_show_changes_nothing() -> None:
    """Bob regenerated; the lost run is bob's: this view was not showing it, and stays."""
    chat = Chat()
    chat.turn("u1", "r0", "a0", "the first answer")
    tree = fold(chat.entries)
    view = View(tree)
    one_by_one(
        tree,
        [
            chat.regenerate("q1", "a0", parent="u1", client="bob"),
            chat.start("r1", "q1", parent="u1", regenerate="a0", client="bob"),
            chat.say("r1", "a1", "half an ans", parent="u1"),
            *lost(chat),
            chat.start("r2", "q1", parent="u1", regenerate="a0", client="bob"),
            chat.say("r2", "b1", "a whole answer", parent="u1"),
        ],
    )
    assert view.message_ids == ["u1", "a0"]


def test_an_own_regeneration_whose_run_is_lost_early_selects_the_restart() -> None:
    chat = answered()
    tree, view = regenerating(chat)
    one_by_one(
        tree,
        [
            *lost(chat, "r2"),
            chat.start("r3", "q1", parent="u1", regenerate="a1"),
            chat.say("r3", "b1", "second answer", parent="u1"),
        ],
    )
    assert view.message_ids == ["u1", "b1"]
