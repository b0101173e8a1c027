"""Fixtures of the `ait` command tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ait.ids import new_id

from .test_cli import ait_cli


@pytest.fixture
def home(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private default embedded Redis location; stopped after the test."""
    socket_dir = Path(f"/tmp/ait-cli-{new_id()[:8]}")
    values = {"AIT_HOME": str(tmp_path / "home"), "AIT_REDIS_SOCKET": str(socket_dir / "r.sock")}
    yield values
    ait_cli("redis", "--stop", **values)
