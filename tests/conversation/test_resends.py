"""Resends: an agent's writer that did not hear back from Redis writes the same entry again,
with the same resend key (`k`, `entry_key`). Whether or not the first write had landed, the
tree is the one the entries make written once, in every arrival order."""

from __future__ import annotations

import random
from typing import Any

from ait.conversation import Tree, View

from .builders import Chat, Entry, finish, fold, message_of, run_of


def keyed(entry: Entry, key: str) -> Entry:
    entry_id, event = entry
    assert not isinstance(event, dict)
    return entry_id, event.model_copy(update={"entry_key": key})  # type: ignore[union-attr]


def key_last(chat: Chat, key: str) -> Entry:
    """Give the chat's newest entry the resend key `key`."""
    chat.entries[-1] = keyed(chat.entries[-1], key)
    return chat.entries[-1]


def again(chat: Chat, entry: Entry) -> Entry:
    """The same entry written again, at the channel's next entry id."""
    event = entry[1]
    return chat.add(event)  # type: ignore[arg-type]


def dump(tree: Tree) -> dict[str, Any]:
    view = View(tree, window=1000)
    return {
        "messages": [tree.message(m.id) for m in tree],
        "runs": tree.runs(),
        "view": view.messages,
    }


def answer_with_resends() -> tuple[list[Entry], list[Entry]]:
    """A run's answer whose writer resent two of its entries; the entries without the
    copies, and with them."""
    chat = Chat()
    chat.user("u1", "hi")
    start = chat.start("r1", "u1", parent="u1")
    parts = [
        chat.say("r1", "a1", "Hel", parent="u1"),
        chat.say("r1", "a1", "lo", parent="u1"),
        chat.say("r1", "a1", " there", parent="u1"),
        chat.out("r1", "a1", finish(), parent="u1"),
    ]
    end = chat.end("r1")
    keys = {entry[0]: f"w1-{n}" for n, entry in enumerate([start, *parts, end])}
    chat.entries = [keyed(e, keys[e[0]]) if e[0] in keys else e for e in chat.entries]
    once = list(chat.entries)
    # The writer lost the replies of "lo" and the finish: both went out again, after
    # another client's message. So did the run.end.
    chat.user("u2", "meanwhile", parent="u1", client="bob")
    for entry in (once[3], once[5], once[6]):
        again(chat, entry)
    return once, chat.entries


def test_an_entry_written_twice_folds_once() -> None:
    once, twice = answer_with_resends()
    tree = fold(twice)
    answer = message_of(tree, "a1")
    assert answer.text == "Hello there"
    assert answer.status == "complete"
    assert run_of(tree, "r1").status == "complete"
    expected = fold([*once, *(e for e in twice if e[1].type == "input" and e not in once)])
    assert dump(tree) == dump(expected)


def test_copies_fold_away_in_any_arrival_order() -> None:
    once, twice = answer_with_resends()
    expected = dump(fold(twice))
    rng = random.Random(13)
    orders = [list(reversed(twice))] + [rng.sample(twice, len(twice)) for _ in range(200)]
    for order in orders:
        tree = Tree()
        for entry in order:
            tree.apply([entry])
        assert dump(tree) == expected, [entry_id for entry_id, _ in order]
    # History read backward, one page at a time, after the live tail.
    tree = Tree()
    for page in (twice[6:], twice[3:6], twice[:3]):
        tree.apply(page)
    assert dump(tree) == expected


def test_a_copy_is_skipped_live_and_said_to_be_one() -> None:
    _, twice = answer_with_resends()
    tree = Tree()
    seen: list[str] = []
    for entry_id, event in twice:
        tree.apply_one(entry_id, event)
        if event.type == "output" and not tree.is_resend(entry_id, event):
            seen.extend(item.get("delta", "") for item in event.payload)
    assert "".join(seen) == "Hello there"
    first = twice[3]
    assert not tree.is_resend(*first)  # the original is not a copy of itself


def test_a_resent_suspend_after_a_resume_does_not_suspend_the_run_again() -> None:
    chat = Chat()
    chat.user("u1", "hi")
    chat.start("r1", "u1", parent="u1")
    chat.out("r1", "a1", {"type": "tool-input-available", "id": "c", "name": "t"}, parent="u1")
    chat.suspend("r1")
    suspend = key_last(chat, "w1-9")
    chat.amend("a1", [{"type": "tool-output-available", "id": "c", "output": 1}])
    chat.resume("r1", "a1", invocation="inv-2")
    again(chat, suspend)
    tree = fold(chat.entries)
    assert run_of(tree, "r1").status == "active"
    for order in (list(reversed(chat.entries)), chat.entries[::2] + chat.entries[1::2]):
        other = Tree()
        for entry in order:
            other.apply([entry])
        assert run_of(other, "r1").status == "active"


def test_the_same_content_under_other_keys_is_not_a_copy() -> None:
    """Two entries of equal content are two entries: only the resend key makes a copy."""
    chat = Chat()
    chat.user("u1", "hi")
    chat.start("r1", "u1", parent="u1")
    for n in range(3):
        chat.say("r1", "a1", "ha", parent="u1")
        key_last(chat, f"w1-{n}")
    chat.say("r1", "a1", "ha", parent="u1")  # no key: a writer that never resends
    chat.say("r1", "a1", "ha", parent="u1")
    assert message_of(fold(chat.entries), "a1").text == "ha" * 5


def test_a_cancel_written_twice_counts_once() -> None:
    chat = Chat()
    chat.user("u1", "hi")
    chat.start("r1", "u1", parent="u1")
    chat.cancel(run_id="r1")
    again(chat, key_last(chat, "c-1"))
    tree = Tree()
    for entry in reversed(chat.entries):
        tree.apply([entry])
    assert run_of(tree, "r1").cancel_requested
    assert dump(tree) == dump(fold(chat.entries[:-1]))
