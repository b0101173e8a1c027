"""The agent side: sessions on channels, runs with their lifecycle, and pools of workers."""

from __future__ import annotations

from .run import CancelRequest as CancelRequest
from .run import PipeResult as PipeResult
from .run import Run as Run
from .run import ToolCall as ToolCall
from .session import AgentSession as AgentSession
from .session import RunHistory as RunHistory
from .worker import AgentWorker as AgentWorker
from .worker import Handler as Handler

__all__ = [
    "AgentSession",
    "AgentWorker",
    "CancelRequest",
    "Handler",
    "PipeResult",
    "Run",
    "RunHistory",
    "ToolCall",
]
