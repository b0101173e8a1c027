"""Shared fixtures: a real redis-server for the whole session, buses, unique channel names.

Every async test runs on anyio's asyncio backend (redis.asyncio needs asyncio). Tests of
the bus, sessions and runs use the real server; `any_bus` runs a functional test twice,
against the real server and against the in-memory (fakeredis) bus we ship to users, so
that the two never silently diverge.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Iterator

import pytest

import ait
from ait.ids import new_id
from ait.testing import EmbeddedRedis, memory_bus

from .network_guard import network_guard as network_guard
from .network_guard import no_api_keys as no_api_keys


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every `async def test_*` on anyio without a marker on each."""
    if name.startswith("test") and inspect.iscoroutinefunction(obj):
        pytest.mark.anyio(obj)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[None]:
    """In async tests, a blocking call on the event loop's thread fails the test."""
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield
        return
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx("ait") as buster:
        # Known, harmless blocking inside dependencies (a version lookup per connection).
        # And setup-time checks of ours that look at files (a model path, the SmolLM2
        # package): called once when a provider is configured, not per request.
        for function in buster.functions.values():
            function.can_block_in("redis/utils.py", "get_lib_version")
            function.can_block_in("ait/providers/registry.py", "smollm2_path")
            function.can_block_in("ait/providers/llama.py", "__init__")
        yield


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One real redis-server (unix socket, no persistence) for the session."""
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def channel_name() -> str:
    """A channel name no other test uses."""
    return f"test-{new_id()[:12]}"


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[ait.Bus]:
    """An open bus on the session's real redis-server."""
    async with ait.Bus.from_url(redis_url) as opened:
        yield opened


@pytest.fixture(params=["redis", "memory"])
async def any_bus(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[ait.Bus]:
    """An open bus on real Redis, then on the in-memory fakeredis backend."""
    made = ait.Bus.from_url(redis_url) if request.param == "redis" else memory_bus()
    async with made as opened:
        yield opened


@pytest.fixture
def persistent_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own with AOF `appendfsync always`: kill it freely."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("aof"), appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ephemeral_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own, without persistence: a restart loses everything."""
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


# Let a developer point the suite at an external server for debugging.
if os.environ.get("AIT_TEST_REDIS_URL"):

    @pytest.fixture
    def redis_url() -> str:
        return os.environ["AIT_TEST_REDIS_URL"]
