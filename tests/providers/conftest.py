"""Fixtures of the provider tests: HTTP clients on mock transports.

The network guard and the removal of API keys apply to the whole suite (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from ..network_guard import NetworkBlocked as NetworkBlocked
from ..network_guard import NetworkGuard as NetworkGuard

MockHandler = Callable[[httpx.Request], Any]


@pytest.fixture
async def mock_client() -> AsyncIterator[Callable[[MockHandler], httpx.AsyncClient]]:
    """Make `httpx.AsyncClient`s on a MockTransport; all are closed after the test."""
    clients: list[httpx.AsyncClient] = []

    def make(handler: MockHandler) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
