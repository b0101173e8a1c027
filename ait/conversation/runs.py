"""Runs as the tree folds them: a run node built from its lifecycle events, and the `RunInfo`
snapshot the tree hands out. Pure: no I/O.

A run's lifecycle is folded in entry-id order whatever the arrival order: `run.resume`
re-activates only a suspended run, and the first `run.end` is final.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..events import Cancel, Event, RunEnd, RunResume, RunStart, RunSuspend
from .message import EntryKey, MessageError

__all__ = ["RunInfo", "RunNode", "RunStatus", "run_info", "targets"]

RunStatus = Literal["pending", "active", "suspended", "complete", "cancelled", "error"]
_TERMINAL = ("complete", "cancelled", "error")


class RunInfo(BaseModel):
    """A run as the tree knows it now."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    status: RunStatus
    started: bool
    client_id: str | None = None
    invocation_id: str | None = None
    input_event_id: str | None = None
    input_message_id: str | None = None
    parent: str | None = None
    regenerate: str | None = None
    error: MessageError | None = None
    message_ids: tuple[str, ...] = ()
    cancel_requested: bool = False
    #: While suspended: the tool calls its `run.suspend` waits for (empty: any answer).
    awaiting: tuple[str, ...] = ()


class RunNode:
    __slots__ = ("awaiting", "cancel_requested", "error", "first_key", "lifecycle", "messages",
                 "output_parent", "run_id", "start", "start_key", "status")  # fmt: skip

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.start: RunStart | None = None
        self.start_key: EntryKey | None = None
        self.first_key: EntryKey | None = None  # of any entry of the run
        self.lifecycle: list[tuple[EntryKey, Event]] = []
        self.status: RunStatus = "pending"
        self.error: MessageError | None = None
        self.messages: list[str] = []
        self.output_parent: str | None = None
        self.cancel_requested = False
        self.awaiting: tuple[str, ...] = ()

    @property
    def anchor(self) -> str | None:
        """The message this run answers: from run.start, else its first output's parent."""
        if self.start is not None:
            return self.start.parent or self.start.input_message_id
        return self.output_parent

    @property
    def key(self) -> EntryKey:
        return self.start_key or self.first_key or (math.inf, math.inf)

    def recompute(self) -> None:
        """Fold the lifecycle in entry order (arrival order must not matter)."""
        self.lifecycle.sort(key=lambda item: item[0])
        status: RunStatus = "active" if self.start is not None or self.messages else "pending"
        error: MessageError | None = None
        awaiting: tuple[str, ...] = ()
        for _, event in self.lifecycle:
            if isinstance(event, RunSuspend):
                if status in ("active", "pending"):
                    status, awaiting = "suspended", event.awaiting
            elif isinstance(event, RunResume):
                if status == "suspended":
                    status = "active"
            elif isinstance(event, RunEnd) and status not in _TERMINAL:
                status = event.reason
                if event.reason == "error":
                    error = MessageError(
                        code=event.error_code or "error", message=event.error_message or ""
                    )
        self.status, self.error = status, error
        self.awaiting = awaiting if status == "suspended" else ()


def targets(event: Cancel, key: EntryKey, run: RunNode) -> bool:
    """Whether cancel `event` (at entry `key`) asks to cancel `run`, in any arrival order."""
    start = run.start
    if event.run_id is not None:
        return event.run_id == run.run_id
    if event.input_message_id is not None:
        return start is not None and start.input_message_id == event.input_message_id
    if run.key > key:
        return False  # a scope covers the runs started before it, not later ones
    return event.scope == "all" or (start is not None and start.run_client_id == event.client_id)


def run_info(run: RunNode) -> RunInfo:
    start = run.start
    return RunInfo(
        run_id=run.run_id,
        status=run.status,
        started=start is not None,
        client_id=start.run_client_id if start else None,
        invocation_id=_latest_invocation(run),
        input_event_id=start.input_event_id if start else None,
        input_message_id=start.input_message_id if start else None,
        parent=run.anchor,
        regenerate=start.regenerate if start else None,
        error=run.error,
        message_ids=tuple(run.messages),
        cancel_requested=run.cancel_requested,
        awaiting=run.awaiting,
    )


def _latest_invocation(run: RunNode) -> str | None:
    invocation = run.start.invocation_id if run.start is not None else None
    for _, event in run.lifecycle:
        if isinstance(event, RunResume | RunSuspend | RunEnd):
            invocation = event.invocation_id
    return invocation
