"""`ait serve`: the web bridge (`ait.web.Bridge`) under uvicorn, for a local demo.

Its hooks are permissive and local: every request from this machine (a loopback address)
is the user `--user` and may do anything on any channel; any other request is refused
(401). A real deployment mounts the bridge in its own app with its own hooks.

It serves the chat page at `/`. With `--model SPEC` an agent worker answers the pool in
the same process (as `ait chat --model` does), so `ait serve --model llama-cpp:smollm2` is a
working local chat in one command.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
from collections.abc import Callable

import anyio
from starlette.requests import Request

from ..agent import AgentWorker
from ._common import Style, open_bus, resolve_redis
from .agent_cmd import load_provider, make_handler

__all__ = ["local_user", "serve_command"]


def local_user(name: str) -> Callable[[Request], str | None]:
    """An authenticate hook: `name` for loopback requests, None (refused) for the rest."""

    def authenticate(request: Request) -> str | None:
        host = request.client.host if request.client else ""
        try:
            return name if ipaddress.ip_address(host).is_loopback else None
        except ValueError:
            return None

    return authenticate


async def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from ..web import Bridge

    style = Style()
    provider = await load_provider(args.model, style) if args.model else None
    bus = await open_bus(resolve_redis(args.redis))
    user = args.user or getpass.getuser()
    try:
        bridge = Bridge(
            bus,
            authenticate=local_user(user),
            authorize=lambda user, channel, action: True,
            pool=args.pool,
            page=True,
        )
        config = uvicorn.Config(
            bridge.app, host=args.host, port=args.port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        worker = None
        if provider is not None:
            handler = make_handler(
                provider, system=args.system, max_tokens=args.max_tokens, style=style
            )
            worker = AgentWorker(
                bus,
                handler,
                pool=args.pool,
                concurrency=2,
                on_error=lambda exc: style.out(style.red(f"error: {exc}")),
            )
            style.out(f"agent on pool {style.bold(args.pool)}: {style.bold(args.model)}")
        style.out(
            f"ait bridge on http://{args.host}:{args.port}/ (local requests act as {user!r}; "
            "others are refused)"
        )
        async with anyio.create_task_group() as tg:
            if worker is not None:
                tg.start_soon(worker.run)
            await server.serve()
            if worker is not None:
                worker.stop()
    finally:
        with anyio.CancelScope(shield=True):
            await bus.aclose()
            if provider is not None:
                await provider.aclose()
    return 0
