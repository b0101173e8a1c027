"""A channel's active-run hash, and the one way to end a run whose agent is gone.

```python
active = ActiveRuns(channel)
records = await active.records(["run-1"])       # run id -> the record as stored
record = unpack_record(records["run-1"])        # alive-at, heartbeat-ms, invocation-id, ...
if silent_for > lost_after(record):
    await active.end_lost("run-1", records["run-1"], message="...")
```

Agents record each run they answer in `<prefix>{<channel>}:active` (in the transaction of
its `run.start`, removed in that of its `run.end` or `run.suspend`) and rewrite the record
every heartbeat. A run whose record goes unrefreshed for `lost_after` (three heartbeats
and a grace) is lost: its agent died outside any worker, or froze. Whoever notices (a
client watching the run, an agent reading the hash, a worker taking over the invocation)
ends it with `end_lost`: one Lua script publishes `run.end` (error, `agent-lost`) and
deletes the record, only if the record is still the one the caller judged. So however
many notice at once, one `run.end` goes out; and a heartbeat that landed since the caller
read the record (the agent was only slow) wins: nothing is ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import msgpack  # pyright: ignore[reportMissingTypeStubs]

from ..events import RunEnd
from ..ids import new_id
from ._redis import translate_errors

if TYPE_CHECKING:
    from .channel import Channel

__all__ = [
    "DEFAULT_HEARTBEAT",
    "LOST_CODE",
    "LOST_GRACE",
    "ActiveRuns",
    "lost_after",
    "unpack_record",
]

#: The error code of a run ended because its agent stopped heartbeating.
LOST_CODE = "agent-lost"
#: Seconds added to three heartbeats before a silent record counts as lost: a beat held up
#: by a busy event loop, a slow Redis round trip, a little clock skew.
LOST_GRACE = 2.0
#: The heartbeat assumed for a record that does not say its own (an older agent).
DEFAULT_HEARTBEAT = 10.0

_unpack: Callable[[bytes], Any] = msgpack.unpackb  # pyright: ignore

# Compare, publish, delete: all or nothing, and only for the record the caller judged.
# XADD first: a script is not rolled back, and a record deleted without its run.end would
# leave the run active for every client, with nothing left to notice it by.
_END_LOST = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return false
end
local unpack = unpack or table.unpack
local id = redis.call('XADD', KEYS[2], unpack(ARGV, 3))
redis.call('HDEL', KEYS[1], ARGV[1])
return id
"""


def unpack_record(raw: bytes) -> dict[str, Any]:
    """A record's fields (`alive-at`, `heartbeat-ms`, ...); empty if it does not decode."""
    try:
        record = _unpack(raw)
    except Exception:
        return {}
    return cast(dict[str, Any], record) if isinstance(record, dict) else {}


def lost_after(record: dict[str, Any], heartbeat: float = DEFAULT_HEARTBEAT) -> float:
    """Seconds a run's record may go unrefreshed before the run counts as lost: three of
    its agent's heartbeats (`heartbeat-ms` in the record; else `heartbeat`) and the grace."""
    beat = record.get("heartbeat-ms")
    if isinstance(beat, int | float) and not isinstance(beat, bool) and beat > 0:
        heartbeat = beat / 1000
    return 3 * heartbeat + LOST_GRACE


class ActiveRuns:
    """The active-run hash of one channel (`<prefix>{<channel>}:active`)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.key = channel.key_for("active")

    async def records(self, run_ids: Sequence[str] | None = None) -> dict[str, bytes]:
        """The records of `run_ids` that exist (all of them when None), as stored."""
        client = self.channel.bus.handle.client
        with translate_errors(f"read the active runs of {self.channel.name!r}"):
            if run_ids is None:
                reply: dict[Any, Any] = await client.hgetall(self.key)
                return {bytes(k).decode(): v for k, v in reply.items()}
            if not run_ids:
                return {}
            values: list[Any] = await client.hmget(self.key, list(run_ids))
        return {rid: raw for rid, raw in zip(run_ids, values, strict=True) if raw is not None}

    async def end_lost(self, run_id: str, seen: bytes, *, message: str) -> str | None:
        """End run `run_id` as lost: publish its `run.end` (error, `agent-lost`) and delete
        its record, atomically, only if the record is still `seen`.

        Returns the `run.end`'s entry id, or None when the record changed (a heartbeat
        landed: the agent lives) or is gone (the run ended or suspended, or someone else
        ended it first): then nothing was written.
        """
        invocation = unpack_record(seen).get("invocation-id")
        end = RunEnd(
            run_id=run_id,
            invocation_id=invocation if isinstance(invocation, str) and invocation else new_id(),
            reason="error",
            error_code=LOST_CODE,
            error_message=message,
        )
        xadd = self.channel.xadd_command(self.channel.encode(end))
        client = self.channel.bus.handle.client
        with translate_errors(f"end the lost run {run_id!r} of {self.channel.name!r}"):
            reply = await client.eval(
                _END_LOST, 2, self.key, self.channel.key, run_id, seen, *xadd[2:]
            )
        return bytes(reply).decode() if reply is not None else None
