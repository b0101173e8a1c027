"""The agent side: sessions on channels, runs with their lifecycle, and pools of workers."""

from __future__ import annotations

from .history import RunHistory as RunHistory
from .results import CancelRequest as CancelRequest
from .results import PipeResult as PipeResult
from .results import ToolCall as ToolCall
from .run import Run as Run
from .session import AgentSession as AgentSession
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
