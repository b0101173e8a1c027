"""`ait redis`: the embedded Redis in the foreground."""

from __future__ import annotations

import argparse
import signal

import anyio
import anyio.to_thread

from ..bus.embedded import EmbeddedRedis, answers_ping, shutdown
from ..errors import AitError
from ._common import Style, default_data_dir, default_socket, fail

__all__ = ["redis_command"]


async def redis_command(args: argparse.Namespace) -> int:
    style = Style()
    socket_path = default_socket()
    if args.stop:
        stopped = await anyio.to_thread.run_sync(shutdown, socket_path)
        style.out("stopped the embedded Redis" if stopped else "no embedded Redis is running")
        return 0
    if args.redis:
        fail("`ait redis` runs the embedded Redis; --redis does not apply", 2)
    url = f"unix://{socket_path}"
    if answers_ping(socket_path):
        style.out(f"the embedded Redis is already running: {style.bold(url)}")
        style.out(style.dim("(stop it with `ait redis --stop`)"))
        return 0
    data_dir = args.data_dir or default_data_dir()
    server = EmbeddedRedis(data_dir, socket_path=socket_path)
    try:
        await anyio.to_thread.run_sync(server.start)
    except AitError as exc:
        fail(f"unable to start the embedded Redis: {exc}")
    try:
        # Listening before saying it runs: a Ctrl-C right after the line stops it cleanly.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            style.out(f"embedded Redis running at {style.bold(url)}")
            style.out(f"data in {data_dir}")
            style.out(
                style.dim(
                    f"other commands find it by themselves; elsewhere: export AIT_REDIS_URL={url}"
                )
            )
            style.out(style.dim("Ctrl-C to stop"))
            async for _ in signals:
                break
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)
    style.out("stopped")
    return 0
