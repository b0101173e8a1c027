"""The Tree: nodes, runs, order, optimistic inputs, idempotence, bad entries, lookups, cancels."""

from __future__ import annotations

import pytest

from ait.codec.chat import ChatCodec
from ait.conversation import FoldError, MessageError, RunInfo, Tree, View
from ait.events import Input

from .builders import Chat, Entry, finish, fold, message_of, run_of, text, user_input


def ids(tree: Tree) -> list[str]:
    """The message ids a fresh view shows (default selection), oldest first."""
    return View(tree, window=1000).message_ids


def two_turns() -> Chat:
    chat = Chat()
    chat.turn("u1", "r1", "a1", "Hello")
    chat.turn("u2", "r2", "a2", "Bye", parent="a1")
    return chat


# -- nodes and runs -----------------------------------------------------------------------


def test_inputs_are_keyed_by_message_id_and_outputs_by_run() -> None:
    tree = fold(two_turns().entries)
    assert len(tree) == 4
    u2, a2 = tree.message("u2"), tree.message("a2")
    assert u2 is not None and a2 is not None
    assert (u2.role, u2.parent, u2.client_id, u2.text) == ("user", "a1", "alice", "hi")
    assert (a2.role, a2.run_id, a2.text) == ("assistant", "r2", "Bye")
    assert tree.message("r2") is None
    assert [run.run_id for run in tree.runs()] == ["r1", "r2"]


def test_runs_is_a_reader_called_like_the_others_and_still_reads_as_a_list() -> None:
    tree = fold(two_turns().entries)
    runs = tree.runs()
    assert type(runs) is list
    assert [run.run_id for run in runs] == ["r1", "r2"]
    assert tree.run("r2") == runs[1]
    assert tree.runs == runs  # the older spelling, without the call, still works
    assert [run.run_id for run in tree.runs] == ["r1", "r2"]
    assert Tree().runs() == []


def test_a_tree_iterates_every_message_of_every_branch_in_entry_order() -> None:
    chat = two_turns()
    chat.user("u2b", "edited", parent="a1", fork_of="u2")
    chat.start("r3", "u2b", parent="u2b")
    chat.say("r3", "a3", "to the edit", parent="u2b")
    chat.regenerate("q1", "a3", parent="u2b")
    chat.start("r4", "q1", parent="u2b", regenerate="a3")
    chat.end("r4", "error", error=("rejected", "busy"))  # no message: nothing to iterate
    tree = fold(chat.entries)
    tree.add_optimistic(user_input("u3", "on its way", parent="a3"))
    messages = list(tree)
    assert [m.id for m in messages] == ["u1", "a1", "u2", "a2", "u2b", "a3", "u3"]
    assert len(messages) == len(tree)
    assert messages[-1].optimistic and messages[1] == tree.message("a1")
    assert list(Tree()) == []


def test_run_info_tells_a_runs_place_and_owner() -> None:
    chat = Chat()
    chat.user("u1", client="bob")
    chat.start("r1", "u1", parent="u1", client="bob", invocation="inv-7")
    chat.say("r1", "a1", "one", parent="u1")
    chat.say("r1", "a2", "two", parent="a1")
    assert fold(chat.entries).run("r1") == RunInfo(
        run_id="r1",
        status="active",
        started=True,
        client_id="bob",
        invocation_id="inv-7",
        input_event_id="ev-u1",
        input_message_id="u1",
        parent="u1",
        message_ids=("a1", "a2"),
    )


def test_a_run_goes_through_its_lifecycle() -> None:
    chat = Chat()
    chat.user("u1")
    statuses: list[str] = []
    tree = Tree()

    def step(entry: Entry) -> None:
        tree.apply([entry])
        run = tree.run("r1")
        assert run is not None
        statuses.append(run.status)

    step(chat.resume("r1", "u1", invocation="inv-early"))  # known, not started
    step(chat.start("r1", "u1", parent="u1", invocation="inv-1"))
    step(chat.suspend("r1", invocation="inv-1"))
    step(chat.resume("r1", "u1", invocation="inv-2"))
    step(chat.end("r1", "complete", invocation="inv-2"))
    assert statuses == ["pending", "active", "suspended", "active", "complete"]
    run = tree.run("r1")
    assert run is not None and run.invocation_id == "inv-2"


@pytest.mark.parametrize("reason", ["complete", "cancelled"])
def test_run_end_sets_the_status_it_names(reason: str) -> None:
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.end("r1", "cancelled" if reason == "cancelled" else "complete")
    run = fold(chat.entries).run("r1")
    assert run is not None and (run.status, run.error) == (reason, None)


def test_run_end_with_error_carries_code_and_message() -> None:
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.end("r1", "error", error=("provider-timeout", "no token in 30 s"))
    run = fold(chat.entries).run("r1")
    assert run is not None
    assert run.status == "error"
    assert run.error == MessageError(code="provider-timeout", message="no token in 30 s")


def test_resume_reactivates_only_a_suspended_run() -> None:
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.resume("r1", "u1", invocation="inv-2")  # not suspended: nothing to resume
    chat.suspend("r1")
    tree = fold(chat.entries)
    assert run_of(tree, "r1").status == "suspended"
    chat.end("r1", "cancelled")
    chat.resume("r1", "u1", invocation="inv-3")  # too late: the run is over
    tree = fold(chat.entries)
    assert run_of(tree, "r1").status == "cancelled"


def test_a_suspended_run_tells_which_calls_it_awaits() -> None:
    """`awaiting` comes from the suspend that holds the run, in entry order: gone once the
    run resumes or ends, and a later suspend's list replaces it."""
    chat = Chat()
    chat.user("u1")
    start = chat.start("r1", "u1", parent="u1")
    first = chat.suspend("r1", awaiting=["a", "b"])
    assert run_of(fold(chat.entries), "r1").awaiting == ("a", "b")
    resume = chat.resume("r1", "u1", invocation="inv-2")
    assert run_of(fold(chat.entries), "r1").awaiting == ()
    second = chat.suspend("r1", invocation="inv-2", awaiting=["c"])
    for arrival in ([second, resume, first, start], chat.entries):
        assert run_of(fold(arrival), "r1").awaiting == ("c",)
    chat.end("r1", invocation="inv-2")
    assert run_of(fold(chat.entries), "r1").awaiting == ()


def test_the_first_run_end_is_final() -> None:
    """A reclaiming worker may end a run that had ended already: the first end stands."""
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.end("r1", "complete")
    chat.end("r1", "error", invocation="inv-reclaim", error=("worker-lost", "lease expired"))
    for arrival in (chat.entries, list(reversed(chat.entries))):
        run = run_of(fold(arrival), "r1")
        assert (run.status, run.error) == ("complete", None)


def test_a_run_lifecycle_is_folded_in_entry_order_whatever_the_arrival_order() -> None:
    chat = Chat()
    chat.user("u1")
    start = chat.start("r1", "u1", parent="u1")
    suspend = chat.suspend("r1")
    resume = chat.resume("r1", "u1", invocation="inv-2")
    tree = Tree()
    tree.apply([resume, suspend, start])
    assert run_of(tree, "r1").status == "active"
    end = chat.end("r1", "error", error=("boom", "it broke"))
    late_suspend = chat.suspend("r1")
    tree = Tree()
    tree.apply([late_suspend, end, resume, start, suspend])
    run = tree.run("r1")
    assert run is not None and run.status == "error" and run.error is not None


def test_runs_are_ordered_by_their_start_entry() -> None:
    chat = two_turns()
    tree = Tree()
    tree.apply(reversed(chat.entries))
    assert [run.run_id for run in tree.runs()] == ["r1", "r2"]
    assert ids(tree) == ["u1", "a1", "u2", "a2"]


def test_messages_are_ordered_by_entry_id_not_arrival() -> None:
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.user("u2", parent="u1")  # sent while r1 was starting: a concurrent input
    chat.say("r1", "a1", "one", parent="u1")
    tree = Tree()
    for entry in reversed(chat.entries):
        tree.apply([entry])
    assert ids(tree) == ["u1", "u2", "a1"]


# -- run.start is canonical ---------------------------------------------------------------


def test_outputs_before_run_start_are_placed_by_their_parent_meanwhile() -> None:
    chat = Chat()
    chat.user("u1")
    chat.user("u2", parent="u1")
    start = chat.start("r1", "u2", parent="u2")
    output = chat.say("r1", "a1", "Hi", parent="u1")  # a writer that disagrees with run.start
    tree = fold(chat.entries[:2])
    tree.apply([output])
    run = tree.run("r1")
    assert run is not None
    assert (run.started, run.status, run.parent, run.message_ids) == (
        False,
        "active",
        "u1",
        ("a1",),
    )
    assert tree.parent_of("a1") == "u1"
    tree.apply([start])
    run = tree.run("r1")
    assert run is not None and (run.started, run.parent) == (True, "u2")
    assert tree.parent_of("a1") == "u2"
    assert [m.id for m in tree.path_to("a1")] == ["u1", "u2", "a1"]


def test_a_second_run_start_for_the_same_run_is_ignored() -> None:
    chat = Chat()
    chat.user("u1")
    chat.user("u2", parent="u1")
    chat.start("r1", "u1", parent="u1", invocation="inv-1")
    chat.start("r1", "u2", parent="u2", invocation="inv-2")
    run = fold(chat.entries).run("r1")
    assert run is not None and (run.parent, run.invocation_id) == ("u1", "inv-1")


# -- optimistic inputs --------------------------------------------------------------------


def test_optimistic_inputs_sort_after_every_echoed_node_in_insertion_order() -> None:
    chat = Chat()
    chat.user("u1")
    tree = fold(chat.entries)
    tree.add_optimistic(user_input("mine-1", "first", parent="u1"))
    tree.add_optimistic(user_input("mine-2", "second", parent="mine-1"))
    chat.start("r1", "u1", parent="u1")
    chat.say("r1", "a1", "late but echoed", parent="u1")
    fold(chat.entries, tree)
    assert ids(tree) == ["u1", "a1", "mine-1", "mine-2"]
    mine = tree.message("mine-1")
    assert mine is not None and mine.optimistic and mine.status == "complete"


def test_the_echo_promotes_an_optimistic_input_in_place() -> None:
    chat = Chat()
    chat.user("u1")
    tree = fold(chat.entries)
    tree.add_optimistic(user_input("mine-1", "first", parent="u1"))
    tree.add_optimistic(user_input("mine-2", "second", parent="u1"))
    chat.user("other", parent="u1", client="bob")
    echo = chat.user("mine-2", "second", parent="u1")
    fold(chat.entries, tree)
    assert len(tree) == 4
    assert ids(tree) == ["u1", "other", "mine-2", "mine-1"]
    promoted = tree.message("mine-2")
    assert promoted is not None and not promoted.optimistic and promoted.text == "second"
    assert tree.input_event("ev-mine-2") == echo
    assert tree.input_event("ev-mine-1") is None  # not echoed yet


def test_an_echo_that_differs_from_the_optimistic_copy_wins() -> None:
    tree = Tree()
    tree.add_optimistic(user_input("m1", "draft"))
    tree.apply([("5-0", user_input("m1", "as published"))])
    message = tree.message("m1")
    assert message is not None and message.text == "as published"
    assert len(tree) == 1


def test_add_optimistic_after_the_echo_changes_nothing() -> None:
    tree = Tree()
    tree.apply([("1-0", user_input("mine", "published"))])
    tree.add_optimistic(user_input("mine", "published"))
    assert len(tree) == 1
    assert not message_of(tree, "mine").optimistic


def test_remove_optimistic_takes_the_input_back() -> None:
    chat = Chat()
    chat.user("u1")
    tree = fold(chat.entries)
    tree.add_optimistic(user_input("mine", parent="u1"))
    tree.remove_optimistic("ev-mine")
    assert tree.message("mine") is None
    assert ids(tree) == ["u1"]
    assert len(tree) == 1


def test_remove_optimistic_leaves_an_echoed_input_alone() -> None:
    tree = Tree()
    tree.add_optimistic(user_input("mine"))
    tree.apply([("1-0", user_input("mine"))])
    tree.remove_optimistic("ev-mine")
    assert ids(tree) == ["mine"]


def test_add_optimistic_refuses_a_malformed_payload() -> None:
    tree = Tree()
    bad = Input(event_id="e", message_id="m", role="user", client_id="c", payload=[{"x": 1}])
    with pytest.raises(ValueError, match="unknown codec event type"):
        tree.add_optimistic(bad)
    assert len(tree) == 0


# -- idempotence and bad entries ----------------------------------------------------------


def test_applying_an_entry_twice_changes_nothing() -> None:
    chat = two_turns()
    tree = fold(chat.entries)
    before = (
        [tree.message(mid) for mid in ("u1", "a1", "u2", "a2")],
        tree.runs(),
        ids(tree),
    )
    assert tree.apply(chat.entries) == []
    tree.apply([chat.entries[2]] * 3)
    after = ([tree.message(mid) for mid in ("u1", "a1", "u2", "a2")], tree.runs(), ids(tree))
    assert after == before
    assert message_of(tree, "a1").text == "Hello"


def test_the_same_input_written_twice_counts_once() -> None:
    """A publish retried after a timeout: one event id at two entry ids."""
    chat = Chat()
    first = chat.user("u1", "hi")
    again = chat.user("u1", "hi")
    for order in ([first, again], [again, first]):
        tree = fold(order)
        assert len(tree) == 1
        assert tree.input_event("ev-u1") == first


def test_a_bad_entry_is_reported_and_the_rest_of_the_batch_applies() -> None:
    reported: list[FoldError] = []
    tree = Tree(on_error=reported.append)
    chat = Chat()
    chat.user("u1")
    chat.bad("unknown protocol version '9'")
    chat.start("r1", "u1", parent="u1")
    chat.out("r1", "a1", text("ok"), {"type": "finish", "status": "done"}, parent="u1")
    chat.add(Input(event_id="e2", message_id="u2", role="user", client_id="c", payload={"t": 1}))
    chat.say("r1", "a2", "fine", parent="u1")
    errors = tree.apply(chat.entries)
    assert errors == reported
    assert [(error.entry_id, error.reason) for error in errors] == [
        ("2-0", "unknown protocol version '9'"),
        ("4-0", "finish: 'status' is 'done'; expected one of ['cancelled', 'complete', 'error']"),
        ("5-0", "payload must be a list of codec events, not dict"),
    ]
    assert ids(tree) == ["u1", "a2"]
    assert tree.apply(chat.entries) == []  # reported once: a bad entry is applied too


def test_an_output_cannot_take_over_an_input_or_another_runs_message() -> None:
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.say("r1", "a1", "mine", parent="u1")
    chat.say("r2", "a1", "stolen", parent="u1")
    chat.say("r2", "u1", "overwritten", parent="u1")
    tree = Tree()
    errors = tree.apply(chat.entries)
    assert [error.entry_id for error in errors] == ["4-0", "5-0"]
    assert message_of(tree, "a1").text == "mine"
    assert message_of(tree, "u1").text == "hi"


def test_a_fold_exception_never_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    from ait.conversation import message

    def broken(state: object, event: object) -> None:
        raise KeyError("a bug in an applier")

    monkeypatch.setitem(message._APPLY, "reasoning-delta", broken)  # pyright: ignore[reportPrivateUsage]
    reported: list[FoldError] = []
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.out("r1", "a1", {"type": "reasoning-delta", "id": "r", "delta": "x"}, parent="u1")
    chat.say("r1", "a2", "still folded", parent="u1")
    errors = Tree(on_error=reported.append).apply(chat.entries)
    assert [error.entry_id for error in errors] == ["3-0"]
    assert errors[0].reason.startswith("fold failed: KeyError")
    assert reported == errors


def test_non_string_metadata_keys_never_break_a_reader() -> None:
    """Another writer's payload must not make snapshots (or views) raise."""
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    chat.out("r1", "a1", {"type": "start", "metadata": {1: "x"}}, text("hi"), parent="u1")
    tree = Tree()
    (error,) = tree.apply(chat.entries)
    assert error.entry_id == "3-0"
    assert [m.id for m in View(tree).messages] == ["u1"]


def test_a_parent_cycle_never_loops() -> None:
    chat = Chat()
    chat.user("x", parent="y")
    chat.user("y", parent="x")
    chat.start("r1", "x", parent="x")
    chat.say("r1", "a1", "hi", parent="x")
    tree = fold(chat.entries)
    assert [m.id for m in tree.path_to("a1")] == ["y", "x", "a1"]
    assert ids(tree) == ["x", "y", "a1"]


# -- inputs that are not messages ---------------------------------------------------------


def test_a_regenerate_request_is_not_a_message() -> None:
    chat = Chat()
    chat.turn("u1", "r1", "a1")
    request = chat.regenerate("q1", "a1", parent="u1")
    tree = fold(chat.entries)
    assert tree.message("q1") is None
    assert len(tree) == 2
    assert tree.input_event("ev-q1") == request


def test_an_optimistic_regenerate_request_is_not_a_message() -> None:
    tree = Tree()
    tree.add_optimistic(
        Input(event_id="e", message_id="q1", role="user", client_id="c", regenerate="a1")
    )
    assert tree.message("q1") is None
    assert len(tree) == 0


# -- lookups ------------------------------------------------------------------------------


def test_path_to_follows_one_branch_only() -> None:
    chat = Chat()
    chat.turn("u1", "r1", "a1")
    chat.turn("u2", "r2", "a2", parent="a1")
    chat.user("u2b", "edited", parent="a1", fork_of="u2")
    chat.start("r3", "u2b", parent="u2b")
    chat.say("r3", "a3", "first", parent="u2b")
    chat.say("r3", "a3b", "second message of the run", parent="a3")
    chat.regenerate("q1", "a1", parent="u1")
    chat.start("r4", "q1", parent="u1", regenerate="a1")
    chat.say("r4", "a4", "regenerated", parent="u1")
    tree = fold(chat.entries)
    assert [m.id for m in tree.path_to("a3b")] == ["u1", "a1", "u2b", "a3", "a3b"]
    assert [m.id for m in tree.path_to("a2")] == ["u1", "a1", "u2", "a2"]
    assert [m.id for m in tree.path_to("a4")] == ["u1", "a4"]
    assert tree.path_to("nope") == []


def test_input_event_finds_echoed_inputs_by_event_id() -> None:
    chat = Chat()
    entry = chat.user("u1")
    amendment = chat.amend("a1", ChatCodec.tool_result("c1", 1), event_id="ev-tool")
    tree = fold(chat.entries)
    assert tree.input_event("ev-u1") == entry
    assert tree.input_event("ev-tool") == amendment
    assert tree.input_event("ev-unknown") is None


def test_run_for_input_is_the_newest_run_started_for_it() -> None:
    chat = Chat()
    chat.user("u1")
    chat.user("u2", parent="u1")
    assert fold(chat.entries).run_for_input("u1") is None
    chat.start("r1", "u1", parent="u1")
    chat.end("r1", "error", error=("worker-lost", "lease expired"))
    chat.start("r2", "u1", parent="u1")  # the invocation was reclaimed and run again
    tree = Tree()
    tree.apply(reversed(chat.entries))
    newest = tree.run_for_input("u1")
    assert newest is not None and newest.run_id == "r2"
    assert tree.run_for_input("u2") is None


# -- cancel -------------------------------------------------------------------------------


def concurrent_runs() -> Chat:
    """Runs r1 (client alice) and r2 (client bob), both still going."""
    chat = Chat()
    chat.user("u1")
    chat.user("u2", parent="u1", client="bob")
    chat.start("r1", "u1", parent="u1", client="alice")
    chat.start("r2", "u2", parent="u2", client="bob")
    chat.say("r1", "a1", "one", parent="u1")
    chat.say("r2", "a2", "two", parent="u2")
    return chat


def cancelled(tree: Tree) -> set[str]:
    return {run.run_id for run in tree.runs if run.cancel_requested}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"run_id": "r2"}, {"r2"}),
        ({"input_message_id": "u1"}, {"r1"}),
        ({"scope": "client", "client": "bob"}, {"r2"}),
        ({"scope": "client", "client": "carol"}, set[str]()),
        ({"scope": "all", "client": "carol"}, {"r1", "r2"}),
    ],
)
def test_a_cancel_marks_the_runs_it_targets(target: dict[str, str], expected: set[str]) -> None:
    chat = concurrent_runs()
    chat.cancel(**target)
    tree = fold(chat.entries)
    assert cancelled(tree) == expected
    assert {run.run_id for run in tree.runs if run.status == "active"} == {"r1", "r2"}


def test_a_cancel_by_input_sent_before_the_run_started_marks_the_run() -> None:
    """The agent holds such a cancel until the run starts, then honours it."""
    chat = Chat()
    chat.user("u1")
    chat.cancel(input_message_id="u1")
    chat.start("r1", "u1", parent="u1")
    assert cancelled(fold(chat.entries)) == {"r1"}


def test_a_cancel_is_marked_whatever_the_arrival_order() -> None:
    chat = concurrent_runs()
    cancel = chat.cancel(run_id="r1")
    tree = Tree()
    tree.apply([cancel])
    tree.apply(chat.entries[:-1])
    assert cancelled(tree) == {"r1"}


def test_a_scoped_cancel_spares_runs_started_after_it() -> None:
    chat = concurrent_runs()
    chat.cancel(scope="all")
    chat.user("u3", parent="a1")
    chat.start("r3", "u3", parent="u3")
    expected = {"r1", "r2"}
    assert cancelled(fold(chat.entries)) == expected
    assert cancelled(fold(reversed(chat.entries))) == expected


def test_a_scoped_cancel_between_the_input_and_its_run_start_marks_the_run() -> None:
    """`send(); cancel_all()` before any agent started: the agent honours the cancel (it
    came after the input), so every fold marks the run, in any arrival order."""
    chat = Chat()
    chat.user("u1", client="alice")
    chat.cancel(scope="client", client="alice")
    chat.start("r1", "u1", parent="u1", client="alice")
    chat.end("r1", "cancelled")
    assert cancelled(fold(chat.entries)) == {"r1"}
    assert cancelled(fold(reversed(chat.entries))) == {"r1"}
    run_start_only = fold(chat.entries[1:])  # the input not folded yet: older than all
    assert cancelled(run_start_only) == {"r1"}


def test_a_cancel_before_the_input_or_after_the_end_does_not_mark_the_run() -> None:
    chat = Chat()
    chat.cancel(scope="all", client="carol")
    chat.user("u1")
    chat.cancel(input_message_id="u1")  # after the input: it counts
    chat.start("r1", "u1", parent="u1")
    chat.end("r1", "complete")
    assert cancelled(fold(chat.entries[:-1])) == {"r1"}
    late = Chat(first=10)
    late.cancel(run_id="r1")
    late.cancel(scope="all", client="carol")
    early = Chat()
    early.user("u1")
    early.start("r1", "u1", parent="u1")
    early.end("r1", "complete")
    for order in (early.entries + late.entries, late.entries + early.entries):
        assert cancelled(fold(order)) == set[str]()


def test_clear_forgets_cancels_too() -> None:
    """After the stream began again, an old cancel must not mark the runs folded anew."""
    chat = concurrent_runs()
    cancel = chat.cancel(scope="all")
    tree = fold(chat.entries)
    assert cancelled(tree) == {"r1", "r2"}
    tree.clear()
    assert tree.runs == []
    fold([entry for entry in chat.entries if entry is not cancel], tree)
    assert cancelled(tree) == set()


def test_run_end_after_cancel_keeps_the_request_visible() -> None:
    chat = concurrent_runs()
    chat.cancel(run_id="r1")
    chat.out("r1", "a1", finish("cancelled", None), parent="u1")
    chat.end("r1", "cancelled")
    tree = fold(chat.entries)
    run = tree.run("r1")
    assert run is not None and (run.status, run.cancel_requested) == ("cancelled", True)
    assert message_of(tree, "a1").status == "cancelled"


def test_a_message_keeps_the_parent_of_its_first_entry_whatever_arrives_first() -> None:
    """History is read backward, so a message's newer entries may be folded before its first
    one; should they disagree on the parent, the first entry's wins, as in a forward fold."""
    chat = Chat()
    chat.user("u1")
    chat.user("u2", parent="u1")
    chat.start("r1", "u1", parent="u1")
    chat.say("r1", "a1", "first ", parent="u1")
    chat.say("r1", "a1", "second", parent="u2")  # a writer that changed its mind
    forward = fold(chat.entries)
    backward = Tree()
    for entry in reversed(chat.entries):
        backward.apply([entry])
    for tree in (forward, backward):
        assert message_of(tree, "a1").parent == "u1"
        assert message_of(tree, "a1").text == "first second"
