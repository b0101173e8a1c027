"""What a run hands to the code around it: the cancel request an `on_cancel` hook judges,
how a `pipe` ended (`PipeResult`, with the model's `ToolCall`s), and the code an error is
published under (`error_code`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..events import Cancel, RunEndReason

__all__ = ["CancelHook", "CancelRequest", "PipeResult", "ToolCall", "error_code"]


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """A cancel that targets a run, handed to `on_cancel` hooks to allow or refuse.

    `cancel.client_id` is who asked; `run_client_id` whose input the run answers, and
    `channel` where: enough for a hook to allow only the run's owner, say.
    """

    run_id: str | None
    entry_id: str
    cancel: Cancel
    channel: str = ""
    run_client_id: str | None = None


CancelHook = Callable[[CancelRequest], bool | Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call the model made in a piped message (`tool-input-available`)."""

    id: str
    name: str
    input: Any = None


@dataclass(frozen=True, slots=True)
class PipeResult:
    """How a `pipe` ended. `error` is the original exception when `reason` is `error`.

    `tool_calls` are the complete tool calls of the message, in order; `finish_reason` is
    the model's own reason (`stop`, `length`, `tool_calls`, ...) when it gave one; `usage`
    the token counts it reported.
    """

    reason: RunEndReason
    message_id: str
    error: BaseException | None = None
    items: int = 0
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: dict[str, int] | None = None


def error_code(error: BaseException) -> str:
    """A stable, kebab-case code for an exception: its `code` attribute, else its class name."""
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        return code
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(error).__name__).lower()
