"""The bridge's writes: JSON bodies in, one event published, the ids the page needs out.

Every body is checked against its model below before anything is written; a field the
model does not name (`client_id` above all: the bridge sets it from the authenticated
user) is refused with 422.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..codec.chat import ChatCodec
from ..events import Multitask

__all__ = [
    "ApprovalBody",
    "CancelBody",
    "EditBody",
    "RegenerateBody",
    "SendBody",
    "ToolResultBody",
    "content_payload",
]

_Id = Field(min_length=1, max_length=200)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SendBody(_Body):
    """`POST /channels/{name}/send`: a new message after `parent` (null: the first)."""

    content: str | list[dict[str, Any]]
    parent: str | None = Field(default=None, min_length=1, max_length=200)
    multitask: Multitask | None = None


class EditBody(_Body):
    """`POST /channels/{name}/edit`: input `message_id` replaced; `parent` is its parent."""

    message_id: str = _Id
    parent: str | None = Field(default=None, min_length=1, max_length=200)
    content: str | list[dict[str, Any]]
    multitask: Multitask | None = None


class RegenerateBody(_Body):
    """`POST /channels/{name}/regenerate`: answer `parent` again, a sibling of assistant
    message `message_id`'s run."""

    message_id: str = _Id
    parent: str = _Id
    multitask: Multitask | None = None


class CancelBody(_Body):
    """`POST /channels/{name}/cancel`: exactly one of `run_id`, `input_message_id`, or
    `scope: "client"` (every run this user started)."""

    run_id: str | None = Field(default=None, min_length=1, max_length=200)
    input_message_id: str | None = Field(default=None, min_length=1, max_length=200)
    scope: Literal["client"] | None = None


class ToolResultBody(_Body):
    """`POST /channels/{name}/tool-result`: the answer to call `call_id` of assistant
    message `message_id` in suspended run `run_id`: `output`, or `error` text."""

    run_id: str = _Id
    message_id: str = _Id
    call_id: str = _Id
    output: Any = None
    error: str | None = None


class ApprovalBody(_Body):
    """`POST /channels/{name}/approval`: approve (or deny) call `call_id`."""

    run_id: str = _Id
    message_id: str = _Id
    call_id: str = _Id
    approved: bool
    reason: str | None = None


def content_payload(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Text becomes ChatCodec user text; a list is taken as ChatCodec events."""
    return ChatCodec.user_text(content) if isinstance(content, str) else content
