"""Helpers for testing code built on `ait`, used by ait's own tests and examples too.

- `EmbeddedRedis`: a real, private redis-server on a unix socket (what ait's tests use).
- `ScriptedProvider`: a provider that plays tokens with delays and fails on cue.
- `memory_bus()`: a bus on fakeredis, in memory, no server: fast unit tests of your own
  agents and UIs. ait's functional bus tests run against it as well as real Redis, so it
  behaves the same for everything ait does (see docs/guides/testing.md for the differences).
"""

from __future__ import annotations

from ..bus.embedded import EmbeddedRedis as EmbeddedRedis
from ..bus.embedded import find_redis_server as find_redis_server
from .memory import memory_bus as memory_bus
from .scripted import ScriptedProvider as ScriptedProvider

__all__ = ["EmbeddedRedis", "ScriptedProvider", "find_redis_server", "memory_bus"]
