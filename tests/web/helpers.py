"""Helpers for the bridge's tests: hooks, a real uvicorn server, an SSE line reader."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.requests import Request

import ait
from ait.web import Bridge


def user_of(request: Request) -> str | None:
    """Tests authenticate with an `x-user` header (a real app checks a session)."""
    return request.headers.get("x-user")


def may(user: str, channel: str, action: str) -> bool:
    """Anyone may do anything, except on channels named `private-...` of someone else."""
    return not channel.startswith("private-") or channel.startswith(f"private-{user}-")


def bridge(bus: ait.Bus, **options: Any) -> Bridge:
    return Bridge(bus, authenticate=user_of, authorize=may, **options)


def asgi_client(app: Any, user: str | None = "alice") -> httpx.AsyncClient:
    headers = {"x-user": user} if user else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bridge", headers=headers
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def serving(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """`app` under a real uvicorn server on 127.0.0.1; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


class Sse:
    """One SSE event as read off the wire: `id`, `event`, `data` lines, or a comment."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.event: str | None = None
        self.data: list[str] = []
        self.comment: str | None = None

    def __repr__(self) -> str:
        return f"Sse(id={self.id!r}, event={self.event!r}, comment={self.comment!r})"


async def sse_events(response: httpx.Response) -> AsyncIterator[Sse]:
    """The events of a streaming SSE response, comments (heartbeats) included."""
    current = Sse()
    async for line in response.aiter_lines():
        if line == "":
            if current.id is not None or current.data or current.event or current.comment:
                yield current
            current = Sse()
        elif line.startswith(":"):
            current.comment = line[1:].strip()
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                current.id = value
            elif field == "event":
                current.event = value
            elif field == "data":
                current.data.append(value)


async def take(response: httpx.Response, count: int, *, comments: bool = False) -> list[Sse]:
    """The next `count` events (heartbeats skipped unless `comments`), within 10 s."""
    got: list[Sse] = []
    events = response.extensions.setdefault("ait-sse", sse_events(response))  # read once
    with anyio.fail_after(10):
        async for event in events:
            if event.comment is not None and not comments:
                continue
            got.append(event)
            if len(got) == count:
                break
    return got
