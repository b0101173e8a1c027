"""The JSON the bridge speaks: events as the browser sees them, and errors.

An event on the wire of the bridge (the `data:` of an SSE event, an item of a history page):

    {"channel": "chat-42", "id": "1733630000000-0",
     "event": {"type": "output", "run_id": "...", "message_id": "...", "role": "assistant",
               "parent": "...", "payload": [{"type": "text-delta", ...}]}}

`event` holds the fields of the `ait.events` model, snake_case, absent when None; unknown
headers under `extra_headers` (only when there are some). An entry that does not decode is
`{"type": "bad-entry", "reason": "..."}`: its raw fields never reach the browser.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.responses import JSONResponse

from ..events import BadEntry, Event

__all__ = ["HttpError", "error_response", "event_json", "dumps"]


def _plain(value: Any) -> Any:
    """Payload values JSON can hold: bytes (msgpack bin) become base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=_plain)


def event_json(channel: str, entry_id: str, event: Event | BadEntry) -> dict[str, Any]:
    """The bridge's JSON for one entry (see the module docstring)."""
    if isinstance(event, BadEntry):
        body: dict[str, Any] = {"type": "bad-entry", "reason": event.reason}
    else:
        body = {"type": event.type}
        for name, value in event:
            if name == "type" or value is None or (name == "extra_headers" and not value):
                continue
            body[name] = dict(value) if name == "extra_headers" else value
    return {"channel": channel, "id": entry_id, "event": body}


class HttpError(Exception):
    """A refusal the bridge answers with `{"error": {"type", "message"}}` and `status`."""

    def __init__(self, status: int, type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message


def error_response(error: HttpError) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": error.type, "message": error.message}}, status_code=error.status
    )
