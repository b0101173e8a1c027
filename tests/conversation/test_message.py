"""The fold of one message's codec events, observed through the Tree that owns it."""

from __future__ import annotations

from typing import Any

import pytest

from ait.codec.chat import ChatCodec
from ait.conversation import (
    DataPart,
    Message,
    MessageError,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    Tree,
)

from .builders import Chat, Wire, finish, fold, reasoning, text


def answer(*entries: list[Wire], end: str | None = None) -> Message:
    """The assistant message `a1` of run `r1` (answering `u1`), one output entry per list."""
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    for payload in entries:
        chat.out("r1", "a1", *payload, parent="u1")
    if end == "error":
        chat.end("r1", "error", error=("provider-down", "the provider went away"))
    elif end is not None:
        chat.end("r1", "cancelled" if end == "cancelled" else "complete")
    message = fold(chat.entries).message("a1")
    assert message is not None
    return message


def tool(event: str, **fields: Any) -> Wire:
    return {"type": f"tool-{event}", "id": "c1", **fields}


def only_tool(message: Message) -> ToolCallPart:
    (part,) = message.parts
    assert isinstance(part, ToolCallPart)
    return part


# -- text and reasoning -------------------------------------------------------------------


def test_text_deltas_append_to_their_part() -> None:
    message = answer([text("Hel")], [text("lo"), text(", world")])
    assert message.parts == (TextPart(id="t0", text="Hello, world"),)
    assert message.text == "Hello, world"


def test_parts_keep_the_order_they_were_opened_in() -> None:
    message = answer(
        [reasoning("Let me think", "r0"), text("First", "t0")],
        [text("Second", "t1"), reasoning(".", "r0"), text(" again", "t0")],
    )
    assert message.parts == (
        ReasoningPart(id="r0", text="Let me think."),
        TextPart(id="t0", text="First again"),
        TextPart(id="t1", text="Second"),
    )
    assert message.text == "First againSecond"  # reasoning is not the message's text


# -- tool calls ---------------------------------------------------------------------------


def test_a_tool_call_goes_through_its_lifecycle() -> None:
    start = [tool("input-start", name="calc")]
    assert only_tool(answer(start)) == ToolCallPart(id="c1", name="calc", state="input-streaming")

    streaming = [*start, tool("input-delta", delta='{"a": ')], [tool("input-delta", delta="1}")]
    part = only_tool(answer(*streaming))
    assert (part.state, part.input_text, part.input) == ("input-streaming", '{"a": 1}', None)

    available = [*streaming, [tool("input-available", name="calc", input={"a": 1})]]
    part = only_tool(answer(*available))
    assert (part.state, part.input, part.input_text) == ("input-available", {"a": 1}, '{"a": 1}')

    part = only_tool(answer(*available, [tool("output-available", output=2)]))
    assert (part.state, part.output, part.error) == ("output-available", 2, None)

    part = only_tool(answer(*available, [tool("output-error", error="overflow")]))
    assert (part.state, part.error, part.output) == ("output-error", "overflow", None)
    assert part.name == "calc"


def test_an_approval_is_requested_then_approved() -> None:
    requested = (
        [tool("input-available", name="rm", input={"path": "/"})],
        [tool("approval-request")],
    )
    assert only_tool(answer(*requested)).approval == "requested"
    part = only_tool(answer(*requested, ChatCodec.approval("c1", True)))
    assert (part.approval, part.approval_reason) == ("approved", None)


def test_a_denied_approval_keeps_its_reason() -> None:
    part = only_tool(
        answer(
            [tool("input-available", name="rm"), tool("approval-request")],
            ChatCodec.approval("c1", False, "not on prod"),
        )
    )
    assert (part.approval, part.approval_reason) == ("denied", "not on prod")


# -- data, usage, metrics, metadata -------------------------------------------------------


def test_a_data_part_with_the_same_id_is_replaced() -> None:
    message = answer(
        [{"type": "data", "id": "d1", "name": "chart", "data": {"v": 1}}],
        [{"type": "data", "id": "d2", "name": "cite", "data": "doc-7"}],
        [{"type": "data", "id": "d1", "name": "chart", "data": {"v": 2}}],
    )
    assert message.parts == (
        DataPart(id="d1", name="chart", data={"v": 2}),
        DataPart(id="d2", name="cite", data="doc-7"),
    )


def test_usage_and_metrics_merge_field_by_field() -> None:
    message = answer(
        [{"type": "usage", "prompt_tokens": 12}, {"type": "metrics", "queue_wait_ms": 3.5}],
        [{"type": "usage", "completion_tokens": 40}, {"type": "metrics", "tokens_per_second": 9}],
        [{"type": "usage", "completion_tokens": 41}],
    )
    assert message.usage == {"prompt_tokens": 12, "completion_tokens": 41}
    assert message.metrics == {"queue_wait_ms": 3.5, "tokens_per_second": 9}


def test_start_metadata_merges() -> None:
    message = answer(
        [{"type": "start", "metadata": {"model": "smol", "t": 0.2}}],
        [{"type": "start", "metadata": {"t": 0.7}}],
    )
    assert message.metadata == {"model": "smol", "t": 0.7}


# -- status -------------------------------------------------------------------------------


def test_an_output_message_streams_until_it_finishes() -> None:
    assert answer([text("Hi")]).status == "streaming"
    message = answer([text("Hi")], [finish("complete", "stop")])
    assert (message.status, message.finish_reason) == ("complete", "stop")


@pytest.mark.parametrize("status", ["cancelled", "error"])
def test_finish_sets_the_status_it_names(status: str) -> None:
    message = answer([text("Hi"), finish(status, "length")])
    assert (message.status, message.finish_reason) == (status, "length")


def test_an_error_event_sets_status_error_and_is_not_undone_by_finish() -> None:
    message = answer(
        [text("Hi")],
        [{"type": "error", "code": "context-full", "message": "too long"}],
        [finish("complete", "stop")],
    )
    assert message.status == "error"
    assert message.error == MessageError(code="context-full", message="too long")
    assert message.finish_reason == "stop"


@pytest.mark.parametrize("reason", ["complete", "cancelled", "error"])
def test_a_run_that_ended_leaves_no_message_streaming(reason: str) -> None:
    assert answer([text("Hi")], end=reason).status == reason


def test_a_finished_message_keeps_its_own_status_when_its_run_ends_otherwise() -> None:
    assert answer([text("Hi"), finish("complete")], end="error").status == "complete"


def test_an_input_message_is_complete_at_once() -> None:
    chat = Chat()
    chat.user("u1", "What is 2+2?", client="bob")
    message = fold(chat.entries).message("u1")
    assert message == Message(
        id="u1",
        role="user",
        parts=(TextPart(id="t0", text="What is 2+2?"),),
        status="complete",
        client_id="bob",
    )


def test_an_output_message_knows_its_run_and_parent() -> None:
    message = answer([text("Hi")])
    assert (message.role, message.run_id, message.parent) == ("assistant", "r1", "u1")
    assert (message.client_id, message.optimistic) == (None, False)


# -- tool results from a client -----------------------------------------------------------


def tool_call_chat() -> Chat:
    """u1, run r1 calls tool c1 in message a1 and suspends for a client to run it."""
    chat = Chat()
    chat.user("u1")
    chat.start("r1", "u1", parent="u1")
    call = tool("input-available", name="weather", input={"city": "Oslo"})
    chat.out("r1", "a1", text("Checking."), call, parent="u1")
    chat.suspend("r1")
    return chat


TOOL_RESULTS = [
    (ChatCodec.tool_result("c1", {"t": -3}), {"state": "output-available", "output": {"t": -3}}),
    (ChatCodec.tool_error("c1", "no network"), {"state": "output-error", "error": "no network"}),
    (ChatCodec.approval("c1", False, "no"), {"approval": "denied", "approval_reason": "no"}),
]


@pytest.mark.parametrize(("payload", "expected"), TOOL_RESULTS)
def test_a_client_tool_result_lands_on_the_assistant_message(
    payload: list[Wire], expected: dict[str, Any]
) -> None:
    chat = tool_call_chat()
    chat.amend("a1", payload, event_id="ev-result")
    tree = fold(chat.entries)
    message = tree.message("a1")
    assert message is not None
    assert message.text == "Checking."
    call = message.parts[1]
    assert isinstance(call, ToolCallPart)
    assert {name: getattr(call, name) for name in expected} == expected
    assert len(tree) == 2  # the result is not a message of its own
    assert tree.input_event("ev-result") is not None


def test_a_tool_result_that_arrives_before_its_message_is_folded_when_it_comes() -> None:
    chat = tool_call_chat()
    result = chat.amend("a1", ChatCodec.tool_result("c1", "sunny"))
    tree = Tree()
    assert tree.apply([result]) == []
    assert tree.message("a1") is None  # nothing to show yet
    assert len(tree) == 0
    fold(chat.entries[:-1], tree)
    message = tree.message("a1")
    assert message is not None
    assert message.parts == (
        TextPart(id="t0", text="Checking."),
        ToolCallPart(
            id="c1",
            name="weather",
            state="output-available",
            input={"city": "Oslo"},
            output="sunny",
        ),
    )
    assert message == fold(chat.entries).message("a1")


ANSWERS = [
    (ChatCodec.tool_result("c1", "first"), ChatCodec.tool_error("c1", "second"), "output"),
    (ChatCodec.tool_error("c1", "first"), ChatCodec.tool_result("c1", "second"), "error"),
    (ChatCodec.approval("c1", True), ChatCodec.approval("c1", False, "second"), "approval"),
]


@pytest.mark.parametrize(("first", "second", "kept"), ANSWERS)
def test_a_call_keeps_its_first_answer_in_any_order_of_folding(
    first: list[Wire], second: list[Wire], kept: str
) -> None:
    """Two clients answered the same call: the first on the channel counts, whatever order
    the entries are folded in (the run resumed with that one)."""
    chat = tool_call_chat()
    chat.amend("a1", first, event_id="ev-1")
    chat.amend("a1", second, event_id="ev-2")
    in_order = fold(chat.entries).message("a1")
    *before, one, two = chat.entries
    reversed_answers = fold([*before, two, one]).message("a1")
    answers_first = fold([one, two, *before]).message("a1")
    assert in_order is not None
    assert in_order == reversed_answers == answers_first
    call = in_order.parts[1]
    assert isinstance(call, ToolCallPart)
    if kept == "output":
        assert (call.state, call.output, call.error) == ("output-available", "first", None)
    elif kept == "error":
        assert (call.state, call.output, call.error) == ("output-error", None, "first")
    else:
        assert (call.approval, call.approval_reason) == ("approved", None)
