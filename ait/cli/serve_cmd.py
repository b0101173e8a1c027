"""`ait serve`: the web bridge (`ait.web.Bridge`) under uvicorn, for a local demo.

Its hooks are permissive and local: every request from this machine (a loopback address)
is the user `--user` and may do anything on any channel; any other request is refused
(401). A real deployment mounts the bridge in its own app with its own hooks.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
from collections.abc import Callable

from starlette.requests import Request

from ._common import Style, open_bus, resolve_redis

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
    bus = await open_bus(resolve_redis(args.redis))
    user = args.user or getpass.getuser()
    try:
        bridge = Bridge(
            bus,
            authenticate=local_user(user),
            authorize=lambda user, channel, action: True,
            pool=args.pool,
        )
        config = uvicorn.Config(
            bridge.app, host=args.host, port=args.port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        style.out(
            f"ait bridge on http://{args.host}:{args.port}/ (local requests act as {user!r}; "
            "others are refused)"
        )
        await server.serve()
    finally:
        await bus.aclose()
    return 0
