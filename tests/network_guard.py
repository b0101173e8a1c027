"""The network guard of the whole suite: no test may leave the machine.

Any connection to a non-loopback address (or a name lookup of a non-local host) fails the
test, even when the code under test swallows the error (it is recorded and checked at
teardown). Unix sockets (the test redis-server) and loopback (test servers) are allowed.
The developer's own API keys are removed from the environment of every test.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_loopback(host: object) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the wildcard/loopback of a server socket
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").lower()
    if host in ("", *_LOCAL_NAMES):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_ip_literal(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


class NetworkBlocked(RuntimeError):
    """A test tried to reach a non-loopback address."""


class NetworkGuard:
    """Records (and refuses) every attempt to leave the machine."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def refuse(self, what: str) -> NetworkBlocked:
        self.violations.append(what)
        return NetworkBlocked(f"network access blocked in tests: {what}")


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """Fail the test on any connection to a non-loopback address."""
    guard = NetworkGuard()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return True
        host = address[0] if isinstance(address, tuple) else address
        return _is_loopback(host)

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            raise guard.refuse(f"connect to {address!r}")
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(sock, address):
            raise guard.refuse(f"connect_ex to {address!r}")
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # IP literals resolve locally; connect() decides about them.
        if not _is_loopback(host) and not _is_ip_literal(host):
            raise guard.refuse(f"name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield guard
    if guard.violations:
        pytest.fail(f"the test tried to reach the network: {guard.violations}")


@pytest.fixture(autouse=True)
def no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the keys they need; the developer's own keys never leak into a test."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
