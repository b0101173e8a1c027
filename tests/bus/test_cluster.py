"""Redis Cluster: a single-node cluster owning all 16384 slots, started by the test.

It is a real cluster-mode server: multi-key commands across slots fail with CROSSSLOT, so
this checks that every key of a channel shares one slot and that the shared reader groups
channels by slot.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import redis

import ait
from ait.bus.embedded import find_redis_server

from .helpers import inp


def _cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too: at most 55535."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20_000, 55_535)
        try:
            with socket.socket() as sock, socket.socket() as bus_sock:
                sock.bind(("127.0.0.1", port))
                bus_sock.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = Path(tmp_path_factory.mktemp("cluster"))
    port = _cluster_port()
    process = subprocess.Popen(
        [
            find_redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(data / "nodes.conf"),
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(data / "redis.log"),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster did not become ok")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


async def test_cluster_is_detected_and_channels_work(cluster_url: str) -> None:
    async with ait.Bus.from_url(cluster_url) as bus:
        assert bus.cluster is True
        channel = bus.channel(f"c-{ait.ids.new_id()[:8]}")
        ids = await channel.publish_many([inp(0), inp(1)])
        assert [i for i, _ in await channel.read()] == ids
        assert [i for i, _ in await channel.history(limit=1)] == ids[1:]
        async with channel.writer() as out:
            out.send(inp(2))
            out.send(inp(3))
        assert await channel.length() == 4


async def test_cluster_subscriptions_group_by_slot(cluster_url: str) -> None:
    async with ait.Bus.from_url(cluster_url) as bus:
        channels = [bus.channel(f"slot-{i}-{ait.ids.new_id()[:6]}") for i in range(5)]
        assert len({bus.handle.slot(ch.key) for ch in channels}) == 5
        subs = [ch.subscribe() for ch in channels]
        for sub in subs:
            await sub.open()
        try:
            assert bus.hub.connections == 5  # one group per slot
            published = [await ch.publish(inp(i)) for i, ch in enumerate(channels)]
            with anyio.fail_after(5):
                for sub, entry_id in zip(subs, published, strict=True):
                    got = await sub.__anext__()
                    assert got[0] == entry_id
        finally:
            for sub in subs:
                await sub.aclose()
        # A group per slot would rarely serve the next channel: none lingers in a cluster.
        assert bus.hub.connections == 0
