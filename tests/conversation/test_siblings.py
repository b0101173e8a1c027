"""Sibling groups: edits (inputs chained by fork-of) and regenerations (runs of one message)."""

from __future__ import annotations

import itertools

import pytest

from ait.conversation import Tree, View

from .builders import Chat, Entry, fold


def siblings(tree: Tree, message_id: str) -> list[str]:
    return [m.id for m in View(tree).siblings(message_id)]


def edit_chain() -> Chat:
    """u1, then u1b edits u1, then u1c edits u1b: one group of three."""
    chat = Chat()
    chat.user("u0")
    chat.user("u1", "one", parent="u0")
    chat.user("u1b", "two", parent="u0", fork_of="u1")
    chat.user("u1c", "three", parent="u0", fork_of="u1b")
    return chat


def test_edits_chain_transitively_to_the_group_root() -> None:
    tree = fold(edit_chain().entries)
    for member in ("u1", "u1b", "u1c"):
        assert siblings(tree, member) == ["u1", "u1b", "u1c"]
    assert siblings(tree, "u0") == ["u0"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_edit_groups_list_members_oldest_first_whatever_the_arrival(order: tuple[int, ...]) -> None:
    entries = edit_chain().entries
    tree = Tree()
    for index in order:
        tree.apply([entries[index]])
    assert siblings(tree, "u1b") == ["u1", "u1b", "u1c"]


def test_an_edit_under_another_parent_starts_a_group_of_its_own() -> None:
    chat = Chat()
    chat.user("u0")
    chat.user("u1", parent="u0")
    chat.user("stray", parent="u1", fork_of="u1")  # a fork must keep the parent
    tree = fold(chat.entries)
    assert siblings(tree, "stray") == ["stray"]
    assert siblings(tree, "u1") == ["u1"]


def test_a_fork_of_cycle_terminates_and_is_one_group_from_every_member() -> None:
    chat = Chat()
    chat.user("x", parent="p", fork_of="z")
    chat.user("y", parent="p", fork_of="x")
    chat.user("z", parent="p", fork_of="y")
    chat.user("self", parent="p", fork_of="self")
    tree = fold(chat.entries)
    for member in ("x", "y", "z"):
        assert siblings(tree, member) == ["x", "y", "z"]
    assert siblings(tree, "self") == ["self"]


def test_a_dangling_fork_target_leaves_a_group_that_forms_when_it_arrives() -> None:
    chat = edit_chain()
    original = chat.entries[1]
    tree = fold([entry for entry in chat.entries if entry is not original])
    assert siblings(tree, "u1b") == ["u1b", "u1c"]  # u1b's target is not here: u1b is a root
    assert siblings(tree, "u1c") == ["u1b", "u1c"]
    view = View(tree)
    assert view.message_ids == ["u0", "u1c"]
    tree.apply([original])
    for member in ("u1", "u1b", "u1c"):
        assert siblings(tree, member) == ["u1", "u1b", "u1c"]
    assert view.message_ids == ["u0", "u1c"]


def test_a_fork_target_written_after_its_edit_joins_the_group_live() -> None:
    """The target arrives last in entry order: the group must form on the live path too."""
    chat = Chat()
    chat.user("u0")
    chat.user("edit", "new", parent="u0", fork_of="late")  # a client that ran ahead
    chat.user("late", "old", parent="u0")
    tree = Tree()
    for entry in chat.entries:
        tree.apply([entry])
    assert siblings(tree, "edit") == ["edit", "late"]
    assert siblings(tree, "late") == ["edit", "late"]
    assert View(tree).message_ids == ["u0", "late"]


def regenerations() -> tuple[Chat, list[Entry]]:
    chat = Chat()
    chat.turn("u1", "r1", "a1", "first")
    chat.regenerate("q1", "a1", parent="u1")
    chat.start("r2", "q1", parent="u1", regenerate="a1")
    chat.say("r2", "a2", "second", parent="u1")
    chat.regenerate("q2", "a2", parent="u1")
    chat.start("r3", "q2", parent="u1", regenerate="a2")
    chat.say("r3", "a3", "third", parent="u1")
    return chat, chat.entries


def test_runs_answering_one_message_are_siblings_oldest_first() -> None:
    _, entries = regenerations()
    for arrival in (entries, list(reversed(entries))):
        tree = Tree()
        for entry in arrival:
            tree.apply([entry])
        for member in ("a1", "a2", "a3"):
            assert siblings(tree, member) == ["a1", "a2", "a3"]
        assert [run.run_id for run in tree.runs()] == ["r1", "r2", "r3"]


def test_a_regenerated_run_is_placed_by_its_run_start_not_its_request() -> None:
    _, entries = regenerations()
    tree = fold(entries)
    run = tree.run("r2")
    assert run is not None
    assert (run.parent, run.input_message_id, run.regenerate) == ("u1", "q1", "a1")
    assert [m.id for m in tree.path_to("a2")] == ["u1", "a2"]


def test_runs_of_different_messages_are_not_siblings() -> None:
    chat = Chat()
    chat.turn("u1", "r1", "a1")
    chat.turn("u2", "r2", "a2", parent="u1")  # sent concurrently with r1's answer
    tree = fold(chat.entries)
    assert siblings(tree, "a1") == ["a1"]
    assert siblings(tree, "a2") == ["a2"]
    assert siblings(tree, "u2") == ["u2"]
