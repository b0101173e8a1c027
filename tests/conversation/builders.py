"""A small DSL that writes a channel's entries, with increasing entry ids ("1-0", "2-0", ...).

```python
chat = Chat()
chat.user("u1", "hi")                                  # an input message
chat.start("r1", "u1")                                 # run.start answering u1
chat.say("r1", "a1", "Hello", parent="u1")             # one output entry: a text delta
chat.end("r1")
tree = fold(chat.entries)
```

Every builder returns the `(entry_id, event)` it appended, so a test can also apply entries
one by one, out of order, or twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ait.codec.chat import ChatCodec
from ait.conversation import FoldError, Message, RunInfo, Tree
from ait.events import (
    BadEntry,
    Cancel,
    Event,
    Input,
    Output,
    RunEnd,
    RunEndReason,
    RunResume,
    RunStart,
    RunSuspend,
)

Entry = tuple[str, Event | BadEntry]
Wire = dict[str, Any]


def text(delta: str, part: str = "t0") -> Wire:
    return {"type": "text-delta", "id": part, "delta": delta}


def reasoning(delta: str, part: str = "r0") -> Wire:
    return {"type": "reasoning-delta", "id": part, "delta": delta}


def finish(status: str = "complete", reason: str | None = "stop") -> Wire:
    item: Wire = {"type": "finish", "status": status}
    if reason is not None:
        item["finish_reason"] = reason
    return item


class Chat:
    """Entries of one channel, in the order they were written (entry ids increase)."""

    def __init__(self, *, first: int = 1, agent: str = "agent") -> None:
        self._next = first
        self.agent = agent
        self.entries: list[Entry] = []

    def next_id(self) -> str:
        entry_id = f"{self._next}-0"
        self._next += 1
        return entry_id

    def add(self, event: Event | BadEntry) -> Entry:
        entry = (self.next_id(), event)
        self.entries.append(entry)
        return entry

    # -- client side -------------------------------------------------------------------------

    def user(
        self,
        message_id: str,
        content: str = "hi",
        *,
        parent: str | None = None,
        fork_of: str | None = None,
        client: str = "alice",
        event_id: str | None = None,
    ) -> Entry:
        """A user message of one text part."""
        return self.add(
            user_input(
                message_id, content, parent=parent, fork_of=fork_of, client=client,
                event_id=event_id,
            )
        )  # fmt: skip

    def amend(
        self, message_id: str, payload: list[Wire], *, client: str = "alice", event_id: str = ""
    ) -> Entry:
        """An input of tool results/approvals for the assistant message `message_id`."""
        return self.add(
            Input(
                event_id=event_id or f"ev-amend-{self._next}",
                message_id=message_id,
                role="tool",
                client_id=client,
                payload=payload,
            )
        )

    def regenerate(
        self,
        request_id: str,
        target: str,
        *,
        parent: str | None,
        client: str = "alice",
    ) -> Entry:
        """A request to regenerate assistant message `target`; `request_id` is its message id."""
        return self.add(
            Input(
                event_id=f"ev-{request_id}",
                message_id=request_id,
                role="user",
                client_id=client,
                parent=parent,
                regenerate=target,
            )
        )

    def cancel(
        self,
        *,
        run_id: str | None = None,
        input_message_id: str | None = None,
        scope: str | None = None,
        client: str = "alice",
    ) -> Entry:
        return self.add(
            Cancel.model_validate(
                {
                    "event_id": f"ev-cancel-{self._next}",
                    "client_id": client,
                    "run_id": run_id,
                    "input_message_id": input_message_id,
                    "scope": scope,
                }
            )
        )

    # -- agent side --------------------------------------------------------------------------

    def start(
        self,
        run_id: str,
        input_message_id: str,
        *,
        parent: str | None = None,
        regenerate: str | None = None,
        client: str = "alice",
        invocation: str | None = None,
    ) -> Entry:
        """run.start answering `input_message_id` (placed under `parent` when given)."""
        return self.add(
            RunStart(
                run_id=run_id,
                invocation_id=invocation or f"inv-{run_id}",
                input_event_id=f"ev-{input_message_id}",
                input_message_id=input_message_id,
                run_client_id=client,
                parent=parent,
                regenerate=regenerate,
            )
        )

    def resume(
        self, run_id: str, input_message_id: str, *, invocation: str, client: str = "alice"
    ) -> Entry:
        return self.add(
            RunResume(
                run_id=run_id,
                invocation_id=invocation,
                input_event_id=f"ev-{input_message_id}",
                input_message_id=input_message_id,
                run_client_id=client,
            )
        )

    def suspend(
        self, run_id: str, *, invocation: str | None = None, awaiting: list[str] | None = None
    ) -> Entry:
        return self.add(
            RunSuspend(
                run_id=run_id,
                invocation_id=invocation or f"inv-{run_id}",
                payload={"awaiting": awaiting} if awaiting else None,
            )
        )

    def end(
        self,
        run_id: str,
        reason: RunEndReason = "complete",
        *,
        invocation: str | None = None,
        error: tuple[str, str] | None = None,
    ) -> Entry:
        code, message = error if error is not None else (None, None)
        return self.add(
            RunEnd(
                run_id=run_id,
                invocation_id=invocation or f"inv-{run_id}",
                reason=reason,
                error_code=code,
                error_message=message,
            )
        )

    def out(self, run_id: str, message_id: str, *payload: Wire, parent: str) -> Entry:
        """One output entry of codec events for `message_id` of run `run_id`."""
        return self.add(
            Output(
                run_id=run_id,
                message_id=message_id,
                role="assistant",
                parent=parent,
                payload=list(payload),
            )
        )

    def say(self, run_id: str, message_id: str, content: str, *, parent: str) -> Entry:
        """One output entry holding one text delta (part "t0")."""
        return self.out(run_id, message_id, text(content), parent=parent)

    def bad(self, reason: str = "unknown event type 'x'") -> Entry:
        entry_id = self.next_id()
        entry: Entry = (entry_id, BadEntry(entry_id=entry_id, reason=reason))
        self.entries.append(entry)
        return entry

    # -- whole exchanges ---------------------------------------------------------------------

    def turn(
        self,
        input_id: str,
        run_id: str,
        answer_id: str,
        answer: str = "hello",
        *,
        parent: str | None = None,
        question: str = "hi",
    ) -> None:
        """A user message, its run answering with one message, and the run's end."""
        self.user(input_id, question, parent=parent)
        self.start(run_id, input_id, parent=input_id)
        self.say(run_id, answer_id, answer, parent=input_id)
        self.out(run_id, answer_id, finish(), parent=input_id)
        self.end(run_id)


def user_input(
    message_id: str,
    content: str = "hi",
    *,
    parent: str | None = None,
    fork_of: str | None = None,
    client: str = "alice",
    event_id: str | None = None,
) -> Input:
    """An input event of a user message (for `tree.add_optimistic` or an echo)."""
    return Input(
        event_id=event_id or f"ev-{message_id}",
        message_id=message_id,
        role="user",
        client_id=client,
        parent=parent,
        fork_of=fork_of,
        payload=ChatCodec.user_text(content),
    )


def fold(entries: Iterable[Entry], tree: Tree | None = None) -> Tree:
    """A tree with `entries` applied as one batch; fails the test on any fold error."""
    tree = tree if tree is not None else Tree()
    errors: Sequence[FoldError] = tree.apply(entries)
    assert errors == [], errors
    return tree


def message_of(tree: Tree, message_id: str) -> Message:
    message = tree.message(message_id)
    assert message is not None, f"no message {message_id!r}"
    return message


def run_of(tree: Tree, run_id: str) -> RunInfo:
    run = tree.run(run_id)
    assert run is not None, f"no run {run_id!r}"
    return run
