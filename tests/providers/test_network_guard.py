"""The network guard itself: loopback and unix sockets pass, anything else fails the test."""

from __future__ import annotations

import socket

import anyio
import pytest

import ait
from ait.providers import OpenAIProvider, RetryPolicy

from .conftest import NetworkBlocked, NetworkGuard
from .helpers import request


def test_loopback_sockets_pass(network_guard: NetworkGuard) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
        with socket.socket() as client:
            assert client.connect_ex(("localhost", server.getsockname()[1])) == 0
    assert network_guard.violations == []


def test_remote_connect_is_refused_and_recorded(network_guard: NetworkGuard) -> None:
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect(("203.0.113.7", 443))  # TEST-NET-3: never routable anyway
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect_ex(("203.0.113.7", 443))
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("api.openai.com", 443)
    assert len(network_guard.violations) == 3
    network_guard.violations.clear()  # seen: do not fail this test at teardown


async def test_a_provider_without_a_mock_cannot_reach_the_internet(
    network_guard: NetworkGuard,
) -> None:
    provider = OpenAIProvider("gpt-x", api_key="sk-test", retry=RetryPolicy(max_retries=0))
    try:
        with anyio.fail_after(10), pytest.raises((NetworkBlocked, ait.ProviderError)):
            async for _ in provider.stream(request()):
                pass
    finally:
        await provider.aclose()
    assert network_guard.violations, "the request should have been stopped by the guard"
    assert any("api.openai.com" in v for v in network_guard.violations)
    network_guard.violations.clear()


async def test_unix_sockets_pass(bus: object, network_guard: NetworkGuard) -> None:
    # The session's redis-server listens on a unix socket: the bus fixture just connected.
    assert network_guard.violations == []
