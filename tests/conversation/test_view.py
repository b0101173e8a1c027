"""Views: the selected branch, selection and pinning, write helpers, windows, change events."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import ait
from ait.conversation import Tree, View, ViewChange

from .builders import Chat, Entry, fold, text, user_input


def conversation() -> Chat:
    """u1 -> a1 -> u2 -> a2 (two complete turns)."""
    chat = Chat()
    chat.turn("u1", "r1", "a1", "Hello")
    chat.turn("u2", "r2", "a2", "Bye", parent="a1")
    return chat


def edit_u2(chat: Chat, new: str = "u2b", *, client: str = "bob") -> None:
    """An edit of u2 and the run answering it."""
    chat.user(new, "edited", parent="a1", fork_of="u2", client=client)
    chat.start(f"r-{new}", new, parent=new)
    chat.say(f"r-{new}", f"a-{new}", "answer to the edit", parent=new)


def regenerate_a2(chat: Chat, request: str = "q1", *, output: bool = True) -> None:
    """A regeneration of a2: a new run under u2."""
    chat.regenerate(request, "a2", parent="u2")
    chat.start(f"r-{request}", request, parent="u2", regenerate="a2")
    if output:
        chat.say(f"r-{request}", f"a-{request}", "another answer", parent="u2")


# -- what is shown ------------------------------------------------------------------------


def test_messages_are_the_selected_branch_in_entry_order() -> None:
    view = View(fold(conversation().entries))
    assert [(m.id, m.text) for m in view.messages] == [
        ("u1", "hi"),
        ("a1", "Hello"),
        ("u2", "hi"),
        ("a2", "Bye"),
    ]
    assert view.message_ids == ["u1", "a1", "u2", "a2"]


def test_concurrent_inputs_under_one_parent_are_all_shown() -> None:
    chat = Chat()
    chat.turn("u1", "r1", "a1")
    chat.user("u2", "from alice", parent="a1")
    chat.user("u3", "from bob", parent="a1", client="bob")
    chat.start("r2", "u2", parent="u2")
    chat.start("r3", "u3", parent="u3")
    chat.say("r3", "a3", "to bob", parent="u3")
    chat.say("r2", "a2", "to alice", parent="u2")
    view = View(fold(chat.entries))
    assert view.message_ids == ["u1", "a1", "u2", "u3", "a3", "a2"]
    assert view.siblings("u3") == [view.messages[3]]


def test_the_default_selection_is_the_newest_sibling() -> None:
    chat = conversation()
    edit_u2(chat)
    regenerate_a2(chat)  # a regeneration on the older branch: not shown by default
    view = View(fold(chat.entries))
    assert view.message_ids == ["u1", "a1", "u2b", "a-u2b"]
    assert view.selected_index("u2") == 1
    assert view.selected_index("u2b") == 1


def test_select_shows_another_branch() -> None:
    chat = conversation()
    edit_u2(chat)
    regenerate_a2(chat)
    view = View(fold(chat.entries))
    assert [m.id for m in view.siblings("u2b")] == ["u2", "u2b"]
    view.select("u2b", 0)
    assert view.message_ids == ["u1", "a1", "u2", "a-q1"]  # the newest run of u2
    assert view.selected_index("u2") == 0
    assert [m.id for m in view.siblings("a2")] == ["a2", "a-q1"]
    assert view.selected_index("a-q1") == 1
    view.select("a-q1", 0)
    assert view.message_ids == ["u1", "a1", "u2", "a2"]
    assert view.selected_index("a2") == 0


def test_a_message_without_siblings_is_its_own_only_alternative() -> None:
    view = View(fold(conversation().entries))
    assert [m.id for m in view.siblings("a1")] == ["a1"]
    assert view.selected_index("a1") == 0
    view.select("a1", 0)
    assert view.message_ids == ["u1", "a1", "u2", "a2"]


@pytest.mark.parametrize("index", [-1, 2, 10])
def test_select_refuses_an_index_out_of_range(index: int) -> None:
    chat = conversation()
    edit_u2(chat)
    view = View(fold(chat.entries))
    with pytest.raises(ait.UsageError, match=f"no sibling {index} of message 'u2'; it has 2"):
        view.select("u2", index)
    with pytest.raises(ait.UsageError):
        view.select("a1", 1)
    assert view.message_ids == ["u1", "a1", "u2b", "a-u2b"]


def test_an_unknown_message_is_a_usage_error() -> None:
    view = View(fold(conversation().entries))
    with pytest.raises(ait.UsageError, match="no message 'nope'"):
        view.siblings("nope")
    with pytest.raises(ait.UsageError):
        view.select("nope", 0)
    with pytest.raises(ait.UsageError):
        view.selected_index("nope")


def test_a_view_of_a_fresh_tree_is_empty() -> None:
    view = View(Tree())
    assert (view.messages, view.last_message_id, view.send_parent()) == ([], None, None)
    assert view.has_older  # the history has not been read yet


def test_a_window_below_one_is_refused() -> None:
    for window in (0, -1):
        with pytest.raises(ait.UsageError, match=f"at least 1 message, not {window}"):
            View(Tree(), window=window)


# -- pinning ------------------------------------------------------------------------------


def live(chat: Chat) -> tuple[Tree, View]:
    """A tree with the chat folded and a view that has been showing it."""
    tree = fold(chat.entries)
    return tree, View(tree)


def apply_new(tree: Tree, chat: Chat, since: int) -> None:
    errors = tree.apply(chat.entries[since:])
    assert errors == []


def test_a_view_keeps_its_branch_when_another_client_edits_it() -> None:
    chat = conversation()
    tree, view = live(chat)
    before = len(chat.entries)
    edit_u2(chat, client="bob")
    apply_new(tree, chat, before)
    assert view.message_ids == ["u1", "a1", "u2", "a2"]
    assert [m.id for m in view.siblings("u2")] == ["u2", "u2b"]
    assert view.selected_index("u2") == 0
    assert View(tree).message_ids == ["u1", "a1", "u2b", "a-u2b"]  # a new view: the newest


def test_a_view_keeps_its_branch_when_another_client_regenerates() -> None:
    chat = conversation()
    tree, view = live(chat)
    before = len(chat.entries)
    regenerate_a2(chat)
    for entry in chat.entries[before:]:
        tree.apply([entry])  # one entry at a time, as a subscription delivers them
    assert view.message_ids == ["u1", "a1", "u2", "a2"]
    assert view.selected_index("a2") == 0
    assert View(tree).message_ids == ["u1", "a1", "u2", "a-q1"]


def test_a_view_keeps_its_branch_when_a_deep_edit_arrives() -> None:
    chat = conversation()
    tree, view = live(chat)
    before = len(chat.entries)
    chat.user("u1b", "edit of the first message", parent=None, fork_of="u1", client="bob")
    apply_new(tree, chat, before)
    assert view.message_ids == ["u1", "a1", "u2", "a2"]


def test_an_own_edit_selects_the_new_sibling_at_once() -> None:
    chat = conversation()
    tree, view = live(chat)
    parent, fork_of = view.edit_target("u2")
    view.expect_edit("mine")
    tree.add_optimistic(user_input("mine", "better question", parent=parent, fork_of=fork_of))
    assert view.message_ids == ["u1", "a1", "mine"]
    assert view.messages[-1].optimistic
    before = len(chat.entries)
    chat.user("mine", "better question", parent=parent, fork_of=fork_of)
    chat.start("r9", "mine", parent="mine")
    chat.say("r9", "a9", "better answer", parent="mine")
    apply_new(tree, chat, before)
    assert view.message_ids == ["u1", "a1", "mine", "a9"]
    assert not view.messages[2].optimistic


def test_an_own_edit_seen_only_when_echoed_is_selected() -> None:
    chat = conversation()
    tree, view = live(chat)
    view.expect_edit("u2b")
    before = len(chat.entries)
    edit_u2(chat, client="alice")
    apply_new(tree, chat, before)
    assert view.message_ids == ["u1", "a1", "u2b", "a-u2b"]


def test_an_own_regenerate_selects_the_new_run_when_it_has_a_message() -> None:
    chat = conversation()
    tree, view = live(chat)
    run_id, anchor = view.regenerate_target("a2")
    assert (run_id, anchor) == ("r2", "u2")
    view.expect_regenerate("q1")
    before = len(chat.entries)
    chat.regenerate("q1", "a2", parent=anchor)
    apply_new(tree, chat, before)
    assert view.message_ids == ["u1", "a1", "u2", "a2"]  # nothing started yet
    before = len(chat.entries)
    chat.start("r-q1", "q1", parent=anchor, regenerate="a2")
    apply_new(tree, chat, before)
    # The new run has nothing to show yet: the view keeps showing the answer it showed.
    assert view.message_ids == ["u1", "a1", "u2", "a2"]
    before = len(chat.entries)
    chat.say("r-q1", "a-q1", "another answer", parent="u2")
    apply_new(tree, chat, before)
    assert view.message_ids == ["u1", "a1", "u2", "a-q1"]
    assert view.selected_index("a2") == 1


def test_two_views_never_affect_each_others_selection() -> None:
    chat = conversation()
    tree = fold(chat.entries)
    mine, theirs = View(tree), View(tree)
    before = len(chat.entries)
    mine.expect_edit("u2b")
    edit_u2(chat, client="alice")
    apply_new(tree, chat, before)
    assert mine.message_ids == ["u1", "a1", "u2b", "a-u2b"]
    assert theirs.message_ids == ["u1", "a1", "u2", "a2"]
    theirs.select("u2", 1)
    mine.select("u2", 0)
    assert mine.message_ids == ["u1", "a1", "u2", "a2"]
    assert theirs.message_ids == ["u1", "a1", "u2b", "a-u2b"]


def test_a_stale_selection_falls_back_to_the_newest() -> None:
    chat = conversation()
    edit_u2(chat)
    tree = fold(chat.entries)
    view = View(tree)
    view.select("u2", 0)
    parent, fork_of = view.edit_target("u2b")
    view.expect_edit("draft")
    tree.add_optimistic(user_input("draft", "never published", parent=parent, fork_of=fork_of))
    assert view.message_ids[-1] == "draft"
    tree.remove_optimistic("ev-draft")  # the publish failed
    assert view.message_ids == ["u1", "a1", "u2b", "a-u2b"]
    assert [m.id for m in view.siblings("u2")] == ["u2", "u2b"]


# -- write helpers ------------------------------------------------------------------------


def test_send_parent_is_the_last_message_of_the_selected_branch() -> None:
    chat = conversation()
    edit_u2(chat)
    view = View(fold(chat.entries))
    assert view.send_parent() == "a-u2b"
    view.select("u2", 0)
    assert view.send_parent() == "a2"


def test_send_parent_ignores_the_window() -> None:
    view = View(fold(conversation().entries), window=1)
    assert view.message_ids == ["a2"]
    assert view.send_parent() == "a2"


def test_edit_target_is_the_inputs_parent_and_itself() -> None:
    view = View(fold(conversation().entries))
    assert view.edit_target("u2") == ("a1", "u2")
    assert view.edit_target("u1") == (None, "u1")
    with pytest.raises(ait.UsageError, match="not an input message"):
        view.edit_target("a1")


def test_regenerate_target_is_the_run_and_the_message_it_answered() -> None:
    chat = conversation()
    chat.say("r2", "a2b", "a second message of r2", parent="a2")
    view = View(fold(chat.entries))
    assert view.regenerate_target("a1") == ("r1", "u1")
    assert view.regenerate_target("a2b") == ("r2", "u2")
    with pytest.raises(ait.UsageError, match="not an agent's message"):
        view.regenerate_target("u2")


# -- windows and pagination ---------------------------------------------------------------


def turns(count: int, *, first: int = 1) -> Chat:
    """`count` complete turns u{i} -> a{i}, chained."""
    chat = Chat(first=first)
    for i in range(count):
        chat.turn(f"u{i}", f"r{i}", f"a{i}", f"answer {i}", parent=f"a{i - 1}" if i else None)
    return chat


def test_the_window_shows_the_newest_messages_first() -> None:
    tree = fold(turns(5).entries)
    tree.history_complete = True
    view = View(tree, window=3)
    assert view.message_ids == ["a3", "u4", "a4"]
    assert view.has_older


def test_the_window_applies_to_the_first_batch_a_view_sees() -> None:
    chat = Chat()
    for i in range(6):
        chat.user(f"u{i}", parent=f"u{i - 1}" if i else None)
    tree = Tree()
    view = View(tree, window=2)
    tree.apply(chat.entries)
    assert view.message_ids == ["u4", "u5"]
    assert view.has_older


def test_new_messages_at_the_end_are_always_shown() -> None:
    chat = turns(3)
    tree = fold(chat.entries)
    view = View(tree, window=2)
    assert view.message_ids == ["u2", "a2"]
    before = len(chat.entries)
    chat.turn("u3", "r3", "a3", parent="a2")
    apply_new(tree, chat, before)
    assert view.message_ids == ["u2", "a2", "u3", "a3"]


def test_reveal_older_returns_how_many_it_revealed() -> None:
    tree = fold(turns(3).entries)
    tree.history_complete = True
    view = View(tree, window=2)
    assert view.reveal_older(3) == 3
    assert view.message_ids == ["a0", "u1", "a1", "u2", "a2"]
    assert view.has_older
    assert view.reveal_older(5) == 1
    assert view.message_ids[0] == "u0"
    assert not view.has_older
    assert view.reveal_older(5) == 0
    assert view.reveal_older(-1) == 0


def test_has_older_until_the_history_is_complete() -> None:
    tree = fold(turns(1).entries)
    view = View(tree, window=10)
    assert view.has_older
    tree.history_complete = True
    assert not view.has_older


def test_a_shown_message_stays_shown_when_its_older_entries_arrive() -> None:
    """History pages split messages: the older deltas of a shown message come later."""
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    for i in range(6):
        chat.say("r1", "a1", f"{i} ", parent="u1")
    tree = fold(chat.entries[-2:])
    view = View(tree, window=5)
    assert [(m.id, m.text) for m in view.messages] == [("a1", "4 5 ")]
    tree.apply(chat.entries[-4:-2])
    assert [(m.id, m.text) for m in view.messages] == [("a1", "2 3 4 5 ")]
    tree.apply(chat.entries[:-4])
    assert view.message_ids == ["a1"]  # the input is older than the window: reveal it
    assert view.reveal_older(5) == 1
    assert view.message_ids == ["u1", "a1"]


def test_a_first_message_sent_optimistically_stays_shown_when_echoed() -> None:
    tree = Tree()
    view = View(tree)
    tree.add_optimistic(user_input("m1", "hello"))
    assert view.message_ids == ["m1"]
    chat = Chat()
    chat.user("m1", "hello")
    chat.start("r1", "m1", parent="m1")
    chat.say("r1", "a1", "hi there", parent="m1")
    tree.apply(chat.entries[:1])
    assert view.message_ids == ["m1"]
    tree.apply(chat.entries[1:])
    assert view.message_ids == ["m1", "a1"]


def test_the_window_hides_older_branches_only_counting_shown_messages() -> None:
    chat = turns(2)
    chat.user("u1b", "edit", parent="a0", fork_of="u1")
    chat.start("r1b", "u1b", parent="u1b")
    chat.say("r1b", "a1b", "edited answer", parent="u1b")
    view = View(fold(chat.entries), window=3)
    assert view.message_ids == ["a0", "u1b", "a1b"]


class Pages:
    """A channel's history read backward in pages of `size` entries, as a session does."""

    def __init__(self, tree: Tree, entries: list[Entry], loaded: int, size: int = 4) -> None:
        self.tree = tree
        self.size = size
        self.pending = entries[: len(entries) - loaded]
        self.calls: list[int] = []
        tree.apply(entries[len(entries) - loaded :])

    async def __call__(self, count: int) -> None:
        self.calls.append(count)
        page, self.pending = self.pending[-self.size :], self.pending[: -self.size]
        self.tree.apply(page)
        if not self.pending:
            self.tree.history_complete = True


async def test_load_older_fetches_history_when_the_tree_has_too_little() -> None:
    chat = turns(5)  # 25 entries, 10 messages
    tree = Tree()
    pages = Pages(tree, chat.entries, loaded=5)
    view = View(tree, window=2, load_older=pages)
    assert view.message_ids == ["u4", "a4"]
    assert await view.load_older(4) == 4
    assert view.message_ids == ["u2", "a2", "u3", "a3", "u4", "a4"]
    assert pages.calls
    assert not tree.history_complete


async def test_load_older_stops_at_the_beginning_of_the_channel() -> None:
    chat = turns(3)
    tree = Tree()
    pages = Pages(tree, chat.entries, loaded=5)
    view = View(tree, window=1, load_older=pages)
    with anyio.fail_after(5):
        revealed = await view.load_older(100)
    assert tree.history_complete
    assert revealed == 5
    assert view.message_ids == ["u0", "a0", "u1", "a1", "u2", "a2"]
    assert not view.has_older
    calls = len(pages.calls)
    assert await view.load_older(10) == 0
    assert len(pages.calls) == calls  # complete: nothing more to ask for


async def test_load_older_gives_up_when_pages_bring_no_messages() -> None:
    tree = fold(turns(1).entries)
    calls: list[int] = []

    async def empty_pages(count: int) -> None:
        calls.append(count)

    view = View(tree, window=1, load_older=empty_pages)
    with anyio.fail_after(5):
        assert await view.load_older(10) == 1
    assert 1 <= len(calls) <= 5
    assert view.message_ids == ["u0", "a0"]


async def test_load_older_without_a_hook_reveals_what_is_folded() -> None:
    view = View(fold(turns(2).entries), window=1)
    assert await view.load_older(2) == 2
    assert view.message_ids == ["a0", "u1", "a1"]


# -- change notification ------------------------------------------------------------------


def watched(chat: Chat, **view_args: int) -> tuple[Tree, View, list[ViewChange]]:
    tree = fold(chat.entries)
    view = View(tree, **view_args)
    changes: list[ViewChange] = []
    view.on_change(changes.append)
    return tree, view, changes


def test_each_delta_of_a_shown_message_is_a_content_change() -> None:
    chat = conversation()
    tree, view, changes = watched(chat)
    for delta in ("and", " more"):
        tree.apply([chat.out("r2", "a2", text(delta), parent="u2")])
    assert changes == [ViewChange("content", ("a2",)), ViewChange("content", ("a2",))]
    assert view.messages[-1].text == "Byeand more"


def test_a_new_shown_message_is_a_structure_change() -> None:
    chat = conversation()
    tree, view, changes = watched(chat)
    tree.apply([chat.user("u3", parent="a2")])
    assert changes == [ViewChange("structure", ("u1", "a1", "u2", "a2", "u3"))]


def test_selection_and_reveal_are_structure_changes() -> None:
    chat = conversation()
    edit_u2(chat)
    tree, view, changes = watched(chat, window=3)
    view.select("u2", 0)
    assert changes[-1].kind == "structure"
    assert view.message_ids == ["a1", "u2", "a2"]
    view.reveal_older(1)
    assert changes[-1] == ViewChange("structure", ("u1", "a1", "u2", "a2"))
    assert len(changes) == 2


def test_changes_out_of_view_are_silent() -> None:
    chat = conversation()
    edit_u2(chat)
    tree, view, changes = watched(chat, window=2)
    assert view.message_ids == ["u2b", "a-u2b"]
    tree.apply([chat.out("r2", "a2", text(" (late)"), parent="u2")])  # another branch
    tree.apply([chat.out("r1", "a1", text(" (late)"), parent="u1")])  # older than the window
    assert changes == []
    view.reveal_older(2)
    assert changes[-1].kind == "structure"
    assert view.messages[1].text == "Hello (late)"


def test_a_batch_with_a_new_message_also_refreshes_changed_ones() -> None:
    chat = conversation()
    tree, view, _ = watched(chat)
    assert view.messages[-1].text == "Bye"
    tree.apply([chat.out("r2", "a2", text("!"), parent="u2"), chat.user("u3", parent="a2")])
    assert [m.text for m in view.messages] == ["hi", "Hello", "hi", "Bye!", "hi"]


def test_run_end_changes_a_shown_streaming_message() -> None:
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.say("r1", "a1", "partial", parent="u1")
    tree, view, changes = watched(chat)
    assert view.messages[-1].status == "streaming"
    tree.apply([chat.end("r1", "cancelled")])
    assert changes == [ViewChange("content", ("a1",))]
    assert view.messages[-1].status == "cancelled"


def test_on_change_returns_an_unsubscribe() -> None:
    chat = conversation()
    tree = fold(chat.entries)
    view = View(tree)
    seen: list[ViewChange] = []
    unsubscribe = view.on_change(seen.append)
    tree.apply([chat.out("r2", "a2", text("."), parent="u2")])
    unsubscribe()
    unsubscribe()  # idempotent
    tree.apply([chat.out("r2", "a2", text("."), parent="u2")])
    assert len(seen) == 1


def test_a_closed_view_stops_following_the_tree() -> None:
    chat = conversation()
    tree, view, changes = watched(chat)
    view.close()
    view.close()
    tree.apply([chat.user("u3", parent="a2")])
    assert changes == []
    assert view.message_ids == ["u1", "a1", "u2", "a2"]


def test_a_closed_view_places_nothing() -> None:
    """Its last message is stale once closed: a write placed there would fork the branch."""
    chat = conversation()
    tree, view, _ = watched(chat)
    view.close()
    tree.apply([chat.user("u3", parent="a2")])
    assert view.closed
    for helper, action in (
        (view.send_parent, "send"),
        (lambda: view.edit_target("u2"), "edit"),
        (lambda: view.regenerate_target("a2"), "regenerate"),
        (lambda: view.expect_edit("u2b"), "edit"),
        (lambda: view.expect_regenerate("q1"), "regenerate"),
    ):
        with pytest.raises(ait.UsageError, match=f"unable to {action}; the view is closed"):
            helper()
    assert view.last_message_id == "a2"  # reads still give what it showed


async def test_changes_can_be_iterated() -> None:
    chat = conversation()
    tree = fold(chat.entries)
    view = View(tree)
    seen: list[ViewChange] = []

    async def produce() -> None:
        for delta in ("a", "b"):
            await anyio.lowlevel.checkpoint()
            tree.apply([chat.out("r2", "a2", text(delta), parent="u2")])
        await anyio.lowlevel.checkpoint()
        tree.apply([chat.user("u3", parent="a2")])

    with anyio.fail_after(5):
        async with view.changes() as changes, anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async for change in changes:
                seen.append(change)
                if change.kind == "structure":
                    break
    assert seen == [
        ViewChange("content", ("a2",)),
        ViewChange("content", ("a2",)),
        ViewChange("structure", ("u1", "a1", "u2", "a2", "u3")),
    ]


async def test_a_consumer_that_falls_behind_gets_one_structure_change() -> None:
    chat = conversation()
    tree = fold(chat.entries)
    view = View(tree)
    async with view.changes(buffer=3) as changes:
        for _ in range(10):
            tree.apply([chat.out("r2", "a2", text("."), parent="u2")])
        tree.apply([chat.out("r2", "a2", text("!"), parent="u2")])
        seen: list[ViewChange] = []
        with anyio.fail_after(5):
            async for change in changes:
                seen.append(change)
                if change.kind == "content" and len(seen) > 1:
                    break
    assert seen[0] == ViewChange("structure", ("u1", "a1", "u2", "a2"))
    assert len(seen) <= 3
    assert view.messages[-1].text == "Bye" + "." * 10 + "!"


async def test_closing_the_view_ends_its_change_streams() -> None:
    view = View(fold(conversation().entries))
    async with view.changes() as changes:
        view.close()
        with anyio.fail_after(5):
            assert [change async for change in changes] == []


def test_selecting_an_older_branch_keeps_the_chosen_message_shown() -> None:
    """The window is anchored on an entry of the edited branch, which is newer than the whole
    original branch: switching back must not leave the view empty."""
    chat = turns(5)
    chat.user("u1b", "edited", parent="a0", fork_of="u1")
    chat.start("r1b", "u1b", parent="u1b")
    chat.say("r1b", "a1b", "edited answer", parent="u1b")
    tree = fold(chat.entries)
    tree.history_complete = True
    view = View(tree, window=2)
    assert view.message_ids == ["u1b", "a1b"]
    view.select("u1b", 0)
    assert view.message_ids == ["u1", "a1", "u2", "a2", "u3", "a3", "u4", "a4"]
    assert view.has_older
    view.select("u1", 1)
    assert view.message_ids == ["u1b", "a1b"]


def test_selecting_an_older_branch_shows_at_least_the_window() -> None:
    chat = turns(3)
    chat.user("u2b", "edited", parent="a1", fork_of="u2")
    chat.start("r2b", "u2b", parent="u2b")
    chat.say("r2b", "a2b", "edited answer", parent="u2b")
    tree = fold(chat.entries)
    tree.history_complete = True
    view = View(tree, window=4)
    assert view.message_ids == ["u1", "a1", "u2b", "a2b"]
    changes: list[ViewChange] = []
    view.on_change(changes.append)
    view.select("u2b", 0)
    assert view.message_ids == ["u1", "a1", "u2", "a2"]
    assert [c.kind for c in changes] == ["structure"]
