"""The embedded redis-server: ephemeral and persistent modes, and clear errors."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import ait
from ait.bus.embedded import find_redis_server
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


def test_no_binary_anywhere_tells_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
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
