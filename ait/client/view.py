"""ClientView: a View that can write: send, edit, regenerate, answer tools and approvals.

Each write computes its place in the tree with the view's helpers (the parent of a send is
the view's last message; an edit forks the input it replaces; a regenerate names the
assistant message whose run is redone), publishes the input, folds it at once where that
makes sense (a new message or an edit: yes; a regenerate request or a tool result: they
are not messages), and wakes an agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from ..codec.chat import ChatCodec
from ..conversation import Tree, View
from ..conversation.message import ToolCallPart
from ..errors import UsageError
from ..events import Input, Multitask
from ..ids import new_id
from .active import ActiveRun

if TYPE_CHECKING:
    from .session import ClientSession

__all__ = ["ClientView", "Content"]

Content = str | Sequence[Mapping[str, Any]]
"""What a message says: text, or a list of ChatCodec events (wire maps)."""

#: Seconds an answer to a tool call waits for the run that made the call to suspend.
ANSWER_WAIT = 10.0


class ClientView(View):
    """A view of a client session, with writes. Get one with `session.view` or
    `session.create_view()`."""

    def __init__(self, session: ClientSession, tree: Tree, *, window: int) -> None:
        super().__init__(tree, window=window, load_older=session.fetch_older)
        self.session = session

    def close(self) -> None:
        """Stop following the tree; every write then raises `UsageError`. Idempotent."""
        super().close()
        self.session.forget_view(self)

    def _require_open(self, action: str) -> None:
        self.session.require_open(action)  # a closed session closed its views: say which
        super()._require_open(action)

    async def send(
        self,
        content: Content,
        *,
        role: str = "user",
        multitask: Multitask | None = None,
        pool: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ActiveRun:
        """Send a new message after this view's last message.

        Raises:
            UsageError: the view (or its session) is closed.
            EntryTooLarge, CodecError: refused before anything was folded or published.
            BusError: the publish failed (the optimistic message is taken back).
        """
        self._require_open("send")
        event = _input(
            event_id=new_id(),
            message_id=new_id(),
            role=role,
            client_id=self.session.client_id,
            parent=self.send_parent(),
            multitask=multitask,
            extra_headers=dict(headers or {}),
            payload=_payload(content),
        )
        return await self.session.submit(event, optimistic=True, pool=pool)

    async def edit(
        self,
        message_id: str,
        content: Content,
        *,
        multitask: Multitask | None = None,
        pool: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ActiveRun:
        """Replace input `message_id` with new content: a sibling this view selects at once."""
        self._require_open("edit")
        parent, fork_of = self.edit_target(message_id)
        original = self.tree.input_nodes[message_id].event
        event = _input(
            event_id=new_id(),
            message_id=new_id(),
            role=original.role,
            client_id=self.session.client_id,
            parent=parent,
            fork_of=fork_of,
            multitask=multitask,
            extra_headers=dict(headers or {}),
            payload=_payload(content),
        )
        self.expect_edit(event.message_id)
        return await self.session.submit(event, optimistic=True, pool=pool)

    async def regenerate(
        self,
        message_id: str,
        *,
        multitask: Multitask | None = None,
        pool: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ActiveRun:
        """Answer again the message that assistant message `message_id` answered: a sibling
        run, which this view selects when its first message arrives (a run that ends
        without one, rejected say, changes nothing on screen)."""
        self._require_open("regenerate")
        _run_id, parent = self.regenerate_target(message_id)
        event = _input(
            event_id=new_id(),
            message_id=new_id(),
            role="user",
            client_id=self.session.client_id,
            parent=parent,
            regenerate=message_id,
            multitask=multitask,
            extra_headers=dict(headers or {}),
            payload=[],
        )
        self.expect_regenerate(event.message_id)
        return await self.session.submit(event, optimistic=False, pool=pool)

    async def send_tool_result(
        self,
        call_id: str,
        output: Any = None,
        *,
        error: str | None = None,
        pool: str | None = None,
    ) -> ActiveRun:
        """Answer a client-side tool call: resumes the suspended run that made it.

        A run waiting for several calls (`RunInfo.awaiting`) resumes once each has an
        answer, taking them all: the handle of every answer then follows the run.

        A call that has its result already, or whose run ended, is refused (`UsageError`);
        while its run is still active (it has not published its suspend yet, or this view
        has not seen it), the answer waits for the suspend, up to `ANSWER_WAIT` seconds.
        """
        payload = (
            ChatCodec.tool_error(call_id, error)
            if error is not None
            else ChatCodec.tool_result(call_id, output)
        )
        return await self._continue([call_id], payload, role="tool", pool=pool)

    async def send_tool_results(
        self,
        results: Mapping[str, Any],
        *,
        errors: Mapping[str, str] | None = None,
        pool: str | None = None,
    ) -> ActiveRun:
        """Answer several tool calls of one message at once: one input, one resume.

        A model that calls tools in parallel suspends its run once for all of them. Answers
        sent apart work too (the run waits for all it awaits), but one input is one entry
        and one wake-up. `results` maps call ids to outputs, `errors` call ids to error
        messages. Refused (`UsageError`) like `send_tool_result`, and when the calls are not
        all of one message.
        """
        failed = dict(errors or {})
        both = sorted(set(results) & set(failed))
        if both:
            raise UsageError(f"tool calls {both} have both a result and an error")
        if not results and not failed:
            raise UsageError("no tool results to send")
        payload = [e for cid, out in results.items() for e in ChatCodec.tool_result(cid, out)]
        payload += [e for cid, text in failed.items() for e in ChatCodec.tool_error(cid, text)]
        return await self._continue([*results, *failed], payload, role="tool", pool=pool)

    async def approve(
        self,
        call_id: str,
        approved: bool = True,
        *,
        reason: str | None = None,
        pool: str | None = None,
    ) -> ActiveRun:
        """Answer an approval request for tool call `call_id`: resumes the run that asked.

        Refused (`UsageError`) like `send_tool_result` when the request was answered already
        or its run ended.
        """
        return await self._continue(
            [call_id], ChatCodec.approval(call_id, approved, reason), role="user", pool=pool
        )

    async def _continue(
        self, call_ids: list[str], payload: list[dict[str, Any]], *, role: str, pool: str | None
    ) -> ActiveRun:
        self._require_open("answer a tool call")
        message_id, run_id = await self._answerable(call_ids, role)
        event = _input(
            event_id=new_id(),
            message_id=message_id,
            role=role,
            client_id=self.session.client_id,
            run_id=run_id,
            payload=payload,
        )
        return await self.session.submit(event, optimistic=False, pool=pool)

    async def _answerable(self, call_ids: list[str], role: str) -> tuple[str, str]:
        """The message and run of tool calls `call_ids`, once their run waits for answers.

        An answer the run will never take is refused here: the agent would refuse it with
        `RunConflict` and publish nothing, and the client would wait for a reply forever.
        """
        deadline = anyio.current_time() + ANSWER_WAIT
        call_id = call_ids[0]
        while True:
            found = {self._find_tool_call(cid)[:2] for cid in call_ids}
            if len(found) > 1:
                raise UsageError(
                    f"tool calls {call_ids} are not all of one message; answer each "
                    "message's calls together"
                )
            for cid in call_ids:
                part = self._find_tool_call(cid)[2]
                if role == "tool" and part.state in ("output-available", "output-error"):
                    raise UsageError(f"tool call {cid!r} has its result already")
                if role != "tool" and part.approval in ("approved", "denied"):
                    raise UsageError(f"the approval of tool call {cid!r} was answered already")
            ((message_id, run_id),) = found
            run = self.tree.run(run_id)
            status = run.status if run is not None else "pending"
            if status == "suspended":
                return message_id, run_id
            if status in ("complete", "cancelled", "error"):
                raise UsageError(
                    f"run {run_id!r} of tool call {call_id!r} ended ({status}); "
                    "it takes no more answers"
                )
            if anyio.current_time() >= deadline:
                raise UsageError(
                    f"run {run_id!r} of tool call {call_id!r} did not suspend within "
                    f"{ANSWER_WAIT:g} s; it is {status}, and would not take the answer"
                )
            await anyio.sleep(0.01)  # the run.suspend is on its way

    def _find_tool_call(self, call_id: str) -> tuple[str, str, ToolCallPart]:
        for message in reversed(self.messages):
            if message.run_id is None:
                continue
            for part in message.parts:
                if part.type == "tool-call" and part.id == call_id:
                    return message.id, message.run_id, part
        raise UsageError(f"no tool call {call_id!r} among the messages this view shows")


def _input(**fields: Any) -> Input:
    """The Input a write publishes; a value it cannot hold is the caller's `UsageError`."""
    try:
        return Input(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'input'}: "
            + str(error["msg"]).removeprefix("Value error, ")
            for error in exc.errors(include_url=False)
        )
        raise UsageError(f"this write cannot be sent: {problems}") from None


def _payload(content: Content) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return ChatCodec.user_text(content)
    items: Any = content  # the type says so; a caller without a type checker may not
    if not isinstance(items, Sequence) or not all(isinstance(i, Mapping) for i in items):  # pyright: ignore[reportUnknownVariableType]
        raise UsageError(
            "a message's content is text, or a list of ChatCodec events (mappings); "
            f"got {type(content).__name__}"
        )
    return [dict(item) for item in content]
