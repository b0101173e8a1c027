"""The bridge: an ASGI app between browsers and a bus. Browsers never talk to Redis.

```python
bridge = ait.web.Bridge(bus, authenticate=user_of, authorize=may)
app.mount("/ait", bridge.app)          # in your Starlette or FastAPI app; open `bus` yourself
```

Rules:
- every route asks `authenticate(request)` for the user (None: 401) and
  `authorize(user, channel, action)` for each channel (False: 403); without hooks nothing
  is allowed;
- the user is the client id of every input and cancel the bridge publishes;
- a browser names channels and messages, never keys, pools or raw events;
- refusals are `{"error": {"type": ..., "message": ...}}` with a 4xx status; nothing is
  written.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..bus import Bus
from ..codec.chat import ChatCodec
from ..errors import AitError, BusError, CodecError, EntryTooLarge, InvalidName, UsageError
from ..events import Cancel, Input, Invocation
from ..ids import MIN_ENTRY_ID, check_name, entry_id_problem, new_id
from ._follow import follow, parse_combined, parse_cursor
from ._shapes import HttpError, error_response, event_json
from ._writes import (
    ApprovalBody,
    CancelBody,
    EditBody,
    RegenerateBody,
    SendBody,
    ToolResultBody,
    content_payload,
)

__all__ = ["Authenticate", "Authorize", "Bridge"]

Authenticate = Callable[[Request], Awaitable[str | None] | str | None]
"""The user making `request` (their client id), or None to refuse it (401)."""
Authorize = Callable[[str, str, str], Awaitable[bool] | bool]
"""Whether `user` may do `action` on `channel`. Actions: `read` (follow, history), `send`,
`edit`, `regenerate`, `cancel`, `tool-result`, `approval`."""

STATIC = Path(__file__).parent / "static"
_PAGE = 200


async def _nobody(request: Request) -> str | None:
    return None


async def _nothing(user: str, channel: str, action: str) -> bool:
    return False


async def _ask(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


class Bridge:
    """The ASGI bridge over `bus`. Its Starlette app is `bridge.app`.

    Args:
        bus: the bus (open it yourself, or pass `own_bus=True` to open and close it with
            the app's lifespan; a mounted app's lifespan does not run).
        authenticate, authorize: the hooks (see `Authenticate`, `Authorize`).
        pool: the worker pool inputs are queued for.
        heartbeat: seconds between SSE comments while a stream is idle.
        buffer: entries one SSE connection may hold unsent before it is disconnected.
        max_body: bytes a POST body may have (413 past it).
        page: serve the chat page (`static/index.html`) at `/` (off by default: an app that
            mounts the bridge has its own pages; `ait serve` turns it on).
    """

    def __init__(
        self,
        bus: Bus,
        *,
        authenticate: Authenticate = _nobody,
        authorize: Authorize = _nothing,
        pool: str = "default",
        heartbeat: float = 15.0,
        buffer: int = 1024,
        max_body: int = 256 * 1024,
        own_bus: bool = False,
        page: bool = False,
    ) -> None:
        self.bus = bus
        self.authenticate = authenticate
        self.authorize = authorize
        self.pool = check_name("pool", pool)
        self.heartbeat = heartbeat
        self.buffer = buffer
        self.max_body = max_body
        writes = {
            "send": self._send,
            "edit": self._edit,
            "regenerate": self._regenerate,
            "cancel": self._cancel,
            "tool-result": self._tool_result,
            "approval": self._approval,
        }
        routes = [
            Route("/events", self._events_many),
            Route("/channels/{name}/events", self._events),
            Route("/channels/{name}/history", self._history),
            *(
                Route(
                    f"/channels/{{name}}/{action}", self._writer(action, handler), methods=["POST"]
                )
                for action, handler in writes.items()
            ),
            *([Route("/", self._page)] if page else []),
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        ]
        self.app = Starlette(
            routes=routes,
            lifespan=self._lifespan if own_bus else None,
            exception_handlers={
                HttpError: self._refusal,
                AitError: self._ait_error,
                404: self._not_found,
                405: self._no_method,
            },
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncGenerator[None]:
        async with self.bus:
            yield

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- refusals ---------------------------------------------------------------------------

    async def _refusal(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        return error_response(exc)

    async def _ait_error(self, request: Request, exc: Exception) -> Response:
        status = 503 if isinstance(exc, BusError) else 400 if isinstance(exc, UsageError) else 500
        return error_response(HttpError(status, type(exc).__name__, str(exc)))

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return error_response(HttpError(404, "NotFound", f"no route {request.url.path}"))

    async def _no_method(self, request: Request, exc: Exception) -> Response:
        return error_response(
            HttpError(405, "UsageError", f"{request.method} is not allowed on {request.url.path}")
        )

    async def _user(self, request: Request) -> str:
        user = await _ask(self.authenticate(request))
        if not user:
            raise HttpError(401, "AuthenticationError", "not authenticated")
        return str(user)

    async def _allowed(self, request: Request, user: str, name: str, action: str) -> str:
        """The channel name, once it is valid and `user` may do `action` on it."""
        try:
            check_name("channel", name)
        except InvalidName as exc:
            raise HttpError(404, "InvalidName", str(exc)) from None
        if not await _ask(self.authorize(user, name, action)):
            raise HttpError(
                403, "PermissionDeniedError", f"{action} on channel {name!r} is not allowed"
            )
        return name

    async def _page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    # -- following --------------------------------------------------------------------------

    def _sse(self, cursors: dict[str, str], *, combined: bool) -> EventSourceResponse:
        return EventSourceResponse(
            follow(self.bus, cursors, combined=combined, buffer=self.buffer),
            ping=self.heartbeat,
            ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
            headers={"Cache-Control": "no-cache, no-transform"},
        )

    async def _events(self, request: Request) -> Response:
        user = await self._user(request)
        name = await self._allowed(request, user, request.path_params["name"], "read")
        header = request.headers.get("last-event-id")
        after = parse_cursor(header if header is not None else request.query_params.get("after"))
        return self._sse({name: after}, combined=False)

    async def _events_many(self, request: Request) -> Response:
        user = await self._user(request)
        names = request.query_params.getlist("channel")
        if not names:
            raise HttpError(400, "UsageError", "name the channels to follow: ?channel=a&channel=b")
        if len(set(names)) != len(names):
            raise HttpError(400, "UsageError", "a channel is named twice")
        for name in names:
            await self._allowed(request, user, name, "read")
        header = request.headers.get("last-event-id")
        cursors = parse_combined(
            header if header is not None else request.query_params.get("after"), names
        )
        return self._sse(cursors, combined=True)

    # -- history ------------------------------------------------------------------------------

    async def _history(self, request: Request) -> Response:
        user = await self._user(request)
        name = await self._allowed(request, user, request.path_params["name"], "read")
        before = request.query_params.get("before") or None
        if before is not None and entry_id_problem(before) is not None:
            raise HttpError(400, "UsageError", f"bad cursor {before!r}: {entry_id_problem(before)}")
        raw_limit = request.query_params.get("limit")
        limit = None if raw_limit == "all" else _int(raw_limit, default=50, low=1, high=1000)
        channel = self.bus.channel(name)
        # Read backward a page of entries at a time until `limit` messages are covered;
        # the entries of the next older message stay for the next page.
        entries: list[Any] = []  # newest first
        messages: set[str] = set()
        end, older = before, False
        while not older:
            page = await channel.history(before=end, limit=_PAGE)
            for entry in reversed(page):
                message_id = getattr(entry[1], "message_id", None)
                if message_id is not None and message_id not in messages:
                    if limit is not None and len(messages) == limit:
                        older = True
                        break
                    messages.add(message_id)
                entries.append(entry)
            if len(page) < _PAGE:
                break
            end = page[0][0]
        entries.reverse()
        return JSONResponse(
            {
                "channel": name,
                "events": [event_json(name, i, e) for i, e in entries],
                "before": entries[0][0] if older else None,
                "cursor": entries[-1][0] if entries else (before or MIN_ENTRY_ID),
            }
        )

    # -- writes -------------------------------------------------------------------------------

    def _writer(
        self, action: str, handler: Callable[[str, str, Any], Awaitable[dict[str, Any]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        model = _BODIES[action]

        async def endpoint(request: Request) -> Response:
            user = await self._user(request)
            name = await self._allowed(request, user, request.path_params["name"], action)
            body = await self._body(request, model)
            try:
                return JSONResponse(await handler(user, name, body))
            except EntryTooLarge as exc:
                raise HttpError(413, "EntryTooLarge", str(exc)) from None
            except (UsageError, CodecError) as exc:
                raise HttpError(422, type(exc).__name__, str(exc)) from None
            except BusError as exc:
                raise HttpError(503, type(exc).__name__, str(exc)) from None

        return endpoint

    async def _body(self, request: Request, model: type[BaseModel]) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise HttpError(413, "EntryTooLarge", f"the body is over {self.max_body} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > self.max_body:
                raise HttpError(413, "EntryTooLarge", f"the body is over {self.max_body} bytes")
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "UsageError", "the body is not JSON") from None
        try:
            return model.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise HttpError(422, "UsageError", f"bad {model.__name__}: {problems}") from None

    async def _publish_input(self, name: str, event: Input) -> dict[str, Any]:
        channel = self.bus.channel(name)
        entry_id = await channel.publish(event)
        invocation = Invocation(channel=name, input_event_id=event.event_id)
        await self.bus.pool(self.pool).enqueue(invocation)
        return {
            "entry_id": entry_id,
            "event_id": event.event_id,
            "message_id": event.message_id,
            "run_id": event.run_id,
        }

    async def _message(self, user: str, name: str, body: Any, **place: Any) -> dict[str, Any]:
        """A new user message (a send, an edit, a regenerate request) at `place`."""
        content = getattr(body, "content", None)
        event = _input(
            message_id=new_id(),
            role="user",
            client_id=user,
            parent=body.parent,
            multitask=body.multitask,
            payload=[] if content is None else content_payload(content),
            **place,
        )
        return await self._publish_input(name, event)

    async def _send(self, user: str, name: str, body: SendBody) -> dict[str, Any]:
        return await self._message(user, name, body)

    async def _edit(self, user: str, name: str, body: EditBody) -> dict[str, Any]:
        return await self._message(user, name, body, fork_of=body.message_id)

    async def _regenerate(self, user: str, name: str, body: RegenerateBody) -> dict[str, Any]:
        return await self._message(user, name, body, regenerate=body.message_id)

    async def _tool_result(self, user: str, name: str, body: ToolResultBody) -> dict[str, Any]:
        payload = (
            ChatCodec.tool_error(body.call_id, body.error)
            if body.error is not None
            else ChatCodec.tool_result(body.call_id, body.output)
        )
        return await self._continue(user, name, body.run_id, body.message_id, "tool", payload)

    async def _approval(self, user: str, name: str, body: ApprovalBody) -> dict[str, Any]:
        payload = ChatCodec.approval(body.call_id, body.approved, body.reason)
        return await self._continue(user, name, body.run_id, body.message_id, "user", payload)

    async def _continue(
        self, user: str, name: str, run_id: str, message_id: str, role: str, payload: Any
    ) -> dict[str, Any]:
        event = _input(
            message_id=message_id, role=role, client_id=user, run_id=run_id, payload=payload
        )
        return await self._publish_input(name, event)

    async def _cancel(self, user: str, name: str, body: CancelBody) -> dict[str, Any]:
        targets = [body.run_id, body.input_message_id, body.scope]
        if sum(t is not None for t in targets) != 1:
            raise UsageError("a cancel names exactly one of run_id, input_message_id or scope")
        event = Cancel(
            event_id=new_id(),
            client_id=user,
            run_id=body.run_id,
            input_message_id=body.input_message_id,
            scope=body.scope,
        )
        entry_id = await self.bus.channel(name).publish(event)
        return {"entry_id": entry_id, "event_id": event.event_id, "run_id": body.run_id}


_BODIES: dict[str, type[BaseModel]] = {
    "send": SendBody,
    "edit": EditBody,
    "regenerate": RegenerateBody,
    "cancel": CancelBody,
    "tool-result": ToolResultBody,
    "approval": ApprovalBody,
}


def _input(**fields: Any) -> Input:
    try:
        return Input(event_id=new_id(), **fields)
    except ValidationError as exc:
        raise UsageError(
            f"this write cannot be sent: {exc.errors(include_url=False)[0]['msg']}"
        ) from None


def _int(value: str | None, *, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise HttpError(400, "UsageError", f"expected a number from {low} to {high}, not {value!r}")
    return int(value)
