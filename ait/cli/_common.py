"""What every `ait` command shares: the Redis to use, output styling, clean failures."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TextIO

import anyio

from ..bus import Bus
from ..bus.embedded import EmbeddedRedis, answers_ping
from ..errors import AitError, BusConnectionError, BusError, UsageError

__all__ = [
    "CommandError",
    "Style",
    "ait_home",
    "default_data_dir",
    "default_socket",
    "fail",
    "open_bus",
    "resolve_redis",
    "run",
]


class CommandError(Exception):
    """A failure to report in one line and exit with `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        self.status = status
        super().__init__(message)


def fail(message: str, status: int = 1) -> NoReturn:
    raise CommandError(message, status)


class Style:
    """ANSI styling when writing to a terminal (and NO_COLOR is unset); plain text otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.enabled = self.stream.isatty() and not os.environ.get("NO_COLOR")

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def out(self, text: str = "", end: str = "\n") -> None:
        self.stream.write(text + end)
        self.stream.flush()


def ait_home() -> Path:
    """Where `ait` keeps its files: $AIT_HOME, else ~/.ait."""
    return Path(os.environ.get("AIT_HOME") or os.path.join(Path.home(), ".ait"))


def default_data_dir() -> Path:
    """Where the default embedded Redis keeps its data (AOF): survives restarts."""
    return ait_home() / "redis"


def default_socket() -> str:
    """The default embedded Redis's unix socket (short: sockets paths are length-limited)."""
    return os.environ.get("AIT_REDIS_SOCKET") or f"/tmp/ait-{os.getuid()}/redis.sock"


def resolve_redis(url: str | None, *, start: bool = True, quiet: bool = False) -> str:
    """The Redis URL to use: `--redis`, else AIT_REDIS_URL, else the default embedded Redis,
    started in the background (persistent, shared by every `ait` command) if needed."""
    url = url or os.environ.get("AIT_REDIS_URL")
    if url:
        if "://" not in url:
            fail(f"invalid Redis URL {url!r}: expected redis://, rediss:// or unix://", 2)
        return url
    socket_path = default_socket()
    if answers_ping(socket_path):
        return f"unix://{socket_path}"
    if not start:
        fail("no Redis: start one with `ait redis`, or pass --redis URL / set AIT_REDIS_URL")
    if not quiet:
        sys.stderr.write(f"starting the embedded Redis (data in {default_data_dir()}) ... ")
        sys.stderr.flush()
    began = time.monotonic()
    server = EmbeddedRedis(default_data_dir(), socket_path=socket_path, detached=True)
    try:
        server.start()
    except AitError as exc:
        fail(f"unable to start the embedded Redis: {exc}")
    if not quiet:
        sys.stderr.write(f"ready in {time.monotonic() - began:.1f} s\n")
    return server.url


async def open_bus(url: str) -> Bus:
    """An open bus, or a one-line failure saying what is wrong with the URL or the server."""
    try:
        bus = Bus.from_url(url)
    except UsageError as exc:
        fail(str(exc), 2)
    try:
        await bus.__aenter__()
    except BusConnectionError as exc:
        fail(f"cannot reach Redis at {url}: {exc.__cause__ or exc}")
    except BusError as exc:
        fail(f"cannot use Redis at {url}: {exc}", 2 if "invalid Redis URL" in str(exc) else 1)
    return bus


def run(main: Callable[[], Awaitable[int | None]]) -> int:
    """Run an async command, turning failures into a message and an exit status."""
    try:
        return int(anyio.run(main) or 0)
    except KeyboardInterrupt:
        return 130
    except BaseException as error:
        failure = _failure(error)
        if failure is None:
            raise
        if isinstance(failure, KeyboardInterrupt):
            return 130
        sys.stderr.write(f"ait: {failure}\n")
        return failure.status


def _failure(error: BaseException) -> CommandError | KeyboardInterrupt | None:
    """What an error that ended a command stands for: a one-line failure (a `CommandError`;
    an `AitError`, usage mistakes exiting 2), an interrupt, or None (a bug: let it show).

    An error raised inside a task group arrives wrapped in an exception group: a group
    holding one such error stands for it, and a `CommandError` anywhere in a group wins.
    """
    leaves = _leaves(error)
    for leaf in leaves:
        if isinstance(leaf, CommandError):
            return leaf
    if len(leaves) != 1:
        return None
    (leaf,) = leaves
    if isinstance(leaf, AitError):
        return CommandError(str(leaf), 2 if isinstance(leaf, UsageError) else 1)
    return leaf if isinstance(leaf, KeyboardInterrupt) else None


def _leaves(error: BaseException) -> list[BaseException]:
    if not isinstance(error, BaseExceptionGroup):
        return [error]
    group: BaseExceptionGroup[BaseException] = error  # pyright: ignore[reportUnknownVariableType]
    return [leaf for inner in group.exceptions for leaf in _leaves(inner)]
