"""The active-run hash's one way to end a lost run: compare, publish `run.end`, delete, all
at once (on real Redis and the memory bus, whose Lua runs in lupa)."""

from __future__ import annotations

import time

import anyio
import msgpack
import pytest

import ait
from ait.bus.active import LOST_GRACE, ActiveRuns, lost_after

from .helpers import inp


def record(**fields: object) -> bytes:
    base: dict[str, object] = {"invocation-id": "inv-1", "alive-at": int(time.time() * 1000)}
    return msgpack.packb({**base, **fields})


async def recorded(bus: ait.Bus, channel_name: str, **records: bytes) -> ActiveRuns:
    """The channel's active-run hash, holding `records` (run id -> record)."""
    active = ActiveRuns(bus.channel(channel_name))
    await bus.handle.client.hset(active.key, mapping=records)  # type: ignore[arg-type]
    return active


async def ends(channel: ait.Channel) -> list[tuple[str, ait.RunEnd]]:
    return [(i, e) for i, e in await channel.read(count=1000) if isinstance(e, ait.RunEnd)]


async def test_end_lost_publishes_one_run_end_and_deletes_the_record(
    any_bus: ait.Bus, channel_name: str
) -> None:
    seen = record()
    active = await recorded(any_bus, channel_name, **{"run-1": seen, "run-2": record()})
    channel = active.channel
    await channel.publish(inp(1))

    entry_id = await active.end_lost("run-1", seen, message="its agent died")

    [(end_id, end)] = await ends(channel)
    assert entry_id == end_id
    assert (end.run_id, end.invocation_id, end.reason) == ("run-1", "inv-1", "error")
    assert (end.error_code, end.error_message) == ("agent-lost", "its agent died")
    assert list(await active.records()) == ["run-2"]  # only the lost run's record went


async def test_clients_that_notice_at_once_publish_one_run_end(
    any_bus: ait.Bus, channel_name: str
) -> None:
    seen = record()
    active = await recorded(any_bus, channel_name, **{"run-1": seen})
    channel = active.channel
    results: list[str | None] = []

    async def notice() -> None:
        results.append(await ActiveRuns(channel).end_lost("run-1", seen, message="lost"))

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(notice)

    assert len([r for r in results if r is not None]) == 1
    assert len(await ends(channel)) == 1
    assert await active.records() == {}


async def test_a_heartbeat_that_landed_since_the_read_wins(
    any_bus: ait.Bus, channel_name: str
) -> None:
    """The agent was slow, not dead: its record changed after the caller judged it."""
    seen = record(**{"alive-at": 1})
    fresh = record()
    active = await recorded(any_bus, channel_name, **{"run-1": fresh})

    assert await active.end_lost("run-1", seen, message="lost") is None
    assert await ends(active.channel) == []
    assert await active.records(["run-1", "other"]) == {"run-1": fresh}


async def test_a_run_already_ended_is_not_ended_again(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    active = ActiveRuns(channel)
    assert await active.end_lost("gone", record(), message="lost") is None
    assert await ends(channel) == []


@pytest.mark.parametrize(
    ("fields", "bound"),
    [
        ({"heartbeat-ms": 200}, 3 * 0.2 + LOST_GRACE),
        ({"heartbeat-ms": 0}, 3 * 5.0 + LOST_GRACE),  # nonsense: the reader's default
        ({"heartbeat-ms": "10"}, 3 * 5.0 + LOST_GRACE),
        ({}, 3 * 5.0 + LOST_GRACE),  # an older agent's record
    ],
)
def test_the_bound_is_three_of_the_record_s_heartbeats_and_the_grace(
    fields: dict[str, object], bound: float
) -> None:
    assert lost_after(fields, 5.0) == pytest.approx(bound)
