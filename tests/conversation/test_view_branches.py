"""Which alternatives a view offers and which it follows: runs that produce no message, the
later messages of a run, restarted runs, and the changes a view reports when a message it
shows gains or loses a sibling."""

from __future__ import annotations

import pytest

import ait
from ait.conversation import Tree, View

from .builders import Chat, Entry, fold


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


# -- a run with no message is no alternative ----------------------------------------------


def test_an_own_regeneration_that_produces_nothing_keeps_what_the_view_showed() -> None:
    chat = answered()
    tree = fold(chat.entries)
    view = View(tree)
    view.expect_regenerate("q1")
    for entry in (
        chat.regenerate("q1", "a1", parent="u1"),
        chat.start("r2", "q1", parent="u1", regenerate="a1"),
        chat.end("r2", "error", error=("rejected", "another run is active")),
    ):
        one_by_one(tree, [entry])
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
    tree = fold(chat.entries)
    view = View(tree)
    view.expect_regenerate("q1")
    one_by_one(
        tree,
        [
            chat.regenerate("q1", "a1", parent="u1"),
            chat.start("r2", "q1", parent="u1", regenerate="a1"),
        ],
    )
    assert view.message_ids == ["u1", "a1"]  # started, nothing to show yet
    one_by_one(tree, [chat.say("r2", "b1", "second answer", parent="u1")])
    assert view.message_ids == ["u1", "b1"]
    assert (ids(view, "b1"), view.selected_index("b1")) == (["a1", "b1"], 1)


def test_a_choice_made_while_an_own_regeneration_runs_stands() -> None:
    chat = answered()
    chat.regenerate("q0", "a1", parent="u1", client="bob")
    chat.start("r0", "q0", parent="u1", regenerate="a1", client="bob")
    chat.say("r0", "a0", "bob's answer", parent="u1")
    tree = fold(chat.entries)
    view = View(tree)
    assert view.message_ids == ["u1", "a0"]
    view.expect_regenerate("q1")
    one_by_one(
        tree,
        [
            chat.regenerate("q1", "a1", parent="u1"),
            chat.start("r2", "q1", parent="u1", regenerate="a1"),
        ],
    )
    view.select("a0", 0)  # back to the first answer, before the new one has a word
    one_by_one(tree, [chat.say("r2", "b1", "third answer", parent="u1")])
    assert view.message_ids == ["u1", "a1"]
    assert (ids(view, "a1"), view.selected_index("a1")) == (["a1", "a0", "b1"], 0)


# -- the later messages of a run ----------------------------------------------------------


def test_a_later_message_of_a_run_is_its_own_only_alternative() -> None:
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.say("r1", "a1", "let me look", parent="u1")
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
