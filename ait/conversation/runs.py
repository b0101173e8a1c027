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

__all__ = ["RunInfo", "RunNode", "RunStatus", "cancel_applies", "run_info", "targets"]

RunStatus = Literal["pending", "active", "suspended", "complete", "cancelled", "error"]
_TERMINAL = ("complete", "cancelled", "error")
_OLDEST: EntryKey = (-math.inf, -math.inf)


class RunInfo(BaseModel):
    """A run as the tree knows it now."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    status: RunStatus
    started: bool
    client_id: str | None = None
    #: The invocation (one wake-up of an agent) of its newest lifecycle event: the
    #: `run.start`'s, then each `run.resume`'s, `run.suspend`'s and `run.end`'s. It changes
    #: when a suspended run is resumed by another invocation.
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
    __slots__ = ("awaiting", "cancel_requested", "end_key", "error", "first_key", "lifecycle",
                 "messages", "output_parent", "run_id", "start", "start_key", "status")  # fmt: skip

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
        self.end_key: EntryKey | None = None  # of the run.end that counts

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
        end_key: EntryKey | None = None
        for key, event in self.lifecycle:
            if isinstance(event, RunSuspend):
                if status in ("active", "pending"):
                    status, awaiting = "suspended", event.awaiting
            elif isinstance(event, RunResume):
                if status == "suspended":
                    status = "active"
            elif isinstance(event, RunEnd) and status not in _TERMINAL:
                status, end_key = event.reason, key
                if event.reason == "error":
                    error = MessageError(
                        code=event.error_code or "error", message=event.error_message or ""
                    )
        self.status, self.error, self.end_key = status, error, end_key
        self.awaiting = awaiting if status == "suspended" else ()


def cancel_applies(
    cancel: Cancel,
    at: EntryKey,
    *,
    run_id: str | None,
    input_message_id: str | None,
    client_id: str | None,
    after: EntryKey,
    before: EntryKey | None = None,
) -> bool:
    """Whether `cancel`, on the channel at entry `at`, asks to stop a run: the one rule,
    which every fold (`RunInfo.cancel_requested`) and every agent (what it honours) apply.

    The cancel must come after the run's input (`after`: that input's entry) and before the
    run's end (`before`, once it ended), and name the run: by its id (`run_id`), by the
    message id of the input it answers (`input_message_id`), by `scope=client` with the id
    of the client it works for (`client_id`: its input's), or `scope=all`.
    """
    if not after < at or (before is not None and not at < before):
        return False
    if cancel.run_id is not None:
        return cancel.run_id == run_id
    if cancel.input_message_id is not None:
        return cancel.input_message_id == input_message_id
    if cancel.scope == "client":
        return client_id is not None and cancel.client_id == client_id
    return cancel.scope == "all"


def targets(event: Cancel, key: EntryKey, run: RunNode, input_key: EntryKey | None) -> bool:
    """Whether cancel `event` (at entry `key`) asks to cancel `run` (`cancel_applies`), in
    any arrival order. `input_key` is the entry of the run's input, None while it is not
    folded: then it counts as older than every entry (history is read newest first, so an
    input not read yet is older than what was)."""
    start = run.start
    return cancel_applies(
        event,
        key,
        run_id=run.run_id,
        input_message_id=start.input_message_id if start is not None else None,
        client_id=start.run_client_id if start is not None else None,
        after=input_key if input_key is not None else _OLDEST,
        before=run.end_key,
    )


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
