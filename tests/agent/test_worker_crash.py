"""A worker process killed mid-run (SIGKILL, a real subprocess): another worker notices
within the lease, ends the lost run `agent-lost` (and answers again with `restart_lost`),
acknowledges its entry, and keeps serving. And an invocation is never run twice at once.

Loop these on their own: `for i in $(seq 10); do pytest tests/agent/test_worker_crash.py; done`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

import ait
from ait.agent import Handler
from ait.testing import ScriptedProvider

from .helpers import (
    enqueue_input,
    events,
    fold,
    pool_name,
    run_ends,
    serving,
    wait_for,
    wait_for_event,
)

pytestmark = pytest.mark.fault

SCRIPT = Path(__file__).with_name("crash_worker.py")
LEASE = 2.0


class WorkerProcess:
    """A `crash_worker.py` subprocess, killed at teardown whatever happens."""

    def __init__(self, url: str, pool: str, log: Path, *options: str) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), url, pool, *options],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=str(SCRIPT.parent),
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        self._log_file.close()

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")


Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    started: list[WorkerProcess] = []

    def make(url: str, pool: str, *options: str) -> WorkerProcess:
        worker = WorkerProcess(url, pool, tmp_path / f"worker-{len(started)}.log", *options)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.close()


def quick_handler(served: list[str]) -> Handler:
    async def handler(run: ait.Run) -> None:
        await run.start()
        assert run.input is not None
        served.append(run.input.event_id)
        messages = await run.load_conversation()
        result = await run.pipe(ScriptedProvider(["fresh ", "answer"], delay=0.01).stream(messages))
        await run.end(result.reason, error=result.error)

    return handler


@pytest.mark.parametrize("restart_lost", [False, True], ids=["end-only", "restart"])
async def test_a_worker_killed_mid_run_is_recovered(
    redis_url: str, bus: ait.Bus, channel_name: str, spawn: Spawn, restart_lost: bool
) -> None:
    pool = pool_name()
    victim_channel = bus.channel(channel_name)
    other_channel = bus.channel(f"{channel_name}-others")
    victim, victim_entry = await enqueue_input(bus, victim_channel, pool, "answer slowly")

    # concurrency 1: busy with the victim, the doomed worker takes nothing else
    doomed = spawn(redis_url, pool, "--lease", str(LEASE), "--concurrency", "1")
    try:
        _, start = await wait_for_event(
            victim_channel, lambda e: isinstance(e, ait.RunStart), timeout=20
        )
    except TimeoutError:
        pytest.fail(f"the worker process did not start the run:\n{doomed.output()}")
    lost_run_id = start.run_id
    await wait_for_event(
        victim_channel, lambda e: isinstance(e, ait.Output) and e.run_id == lost_run_id
    )

    served: list[str] = []
    errors: list[BaseException] = []
    survivor = ait.AgentWorker(
        bus,
        quick_handler(served),
        pool=pool,
        lease=LEASE,
        concurrency=2,
        restart_lost=restart_lost,
        block_ms=100,
        on_error=errors.append,
        consumer="survivor",
    )
    async with serving(survivor):
        before = [(await enqueue_input(bus, other_channel, pool, f"b{i}"))[0] for i in range(3)]
        await wait_for(lambda: len(served) >= 1, timeout=5)  # serving while the other lives

        doomed.kill()
        killed_at = time.monotonic()
        assert doomed.proc.returncode == -signal.SIGKILL

        after = [(await enqueue_input(bus, other_channel, pool, f"a{i}"))[0] for i in range(3)]
        _, lost_end = await wait_for_event(
            victim_channel,
            lambda e: isinstance(e, ait.RunEnd) and e.run_id == lost_run_id,
            timeout=LEASE + 5,
        )
        detected = time.monotonic() - killed_at
        print(f"lost run ended {detected:.2f} s after SIGKILL (lease {LEASE} s)")  # noqa: T201
        assert detected < LEASE + 5

        others = {e.event_id for e in before + after}
        await wait_for(lambda: others <= set(served), timeout=10)
        if restart_lost:
            await wait_for(lambda: victim.event_id in served, timeout=5)
        await wait_for(lambda: survivor.busy == 0, timeout=5)
        await wait_for(lambda: survivor.stats["reclaimed"] == 1, timeout=5)

    assert (lost_end.reason, lost_end.error_code) == ("error", "agent-lost")
    assert lost_end.error_message
    assert survivor.stats["lost_ended"] == 1
    assert await bus.pool(pool).pending_count() == 0  # the lost entry too was acknowledged
    assert await bus.handle.client.hlen(victim_channel.key_for("active")) == 0
    assert errors == []

    # every other invocation was served once, by the survivor
    assert sorted(e for e in served if e != victim.event_id) == sorted(others)
    other_ends = await run_ends(other_channel)
    assert len(other_ends) == 6 and {e.reason for e in other_ends.values()} == {"complete"}

    tree = await fold(victim_channel)
    lost_info = tree.run(lost_run_id)
    assert lost_info is not None and lost_info.status == "error"
    assert lost_info.error is not None and lost_info.error.code == "agent-lost"
    (partial,) = lost_info.message_ids
    message = tree.message(partial)
    assert message is not None and message.status == "error" and message.text.startswith("t0 ")

    starts = await events(victim_channel, "run.start")
    if restart_lost:
        assert len(starts) == 2 and starts[1].run_id != lost_run_id
        assert starts[1].input_event_id == victim.event_id
        again = tree.run(starts[1].run_id)
        assert again is not None and again.status == "complete"
        assert [tree.message(m).text for m in again.message_ids] == ["fresh answer"]  # type: ignore[union-attr]
        assert served.count(victim.event_id) == 1
    else:
        assert len(starts) == 1 and victim.event_id not in served


async def test_a_lost_run_a_client_ended_first_is_still_answered_again(
    redis_url: str, bus: ait.Bus, channel_name: str, spawn: Spawn
) -> None:
    """A client watching the run notices the dead worker's silence before any worker's
    lease runs out, and ends the run `agent-lost`. The worker that then takes the
    invocation over publishes no second end, and with `restart_lost` still answers again."""
    pool = pool_name()
    channel = bus.channel(channel_name)
    victim, _ = await enqueue_input(bus, channel, pool, "answer slowly")
    doomed = spawn(redis_url, pool, "--lease", str(LEASE), "--concurrency", "1")
    try:
        _, start = await wait_for_event(channel, lambda e: isinstance(e, ait.RunStart), timeout=20)
    except TimeoutError:
        pytest.fail(f"the worker process did not start the run:\n{doomed.output()}")
    await wait_for_event(channel, lambda e: isinstance(e, ait.Output))
    doomed.kill()

    async with ait.ClientSession(bus, channel_name, client_id="alice", lost_after=0.5) as client:
        await wait_for(lambda: client.tree.run(start.run_id).status == "error", timeout=10)  # type: ignore[union-attr]
    served: list[str] = []
    rescuer = ait.AgentWorker(
        bus, quick_handler(served), pool=pool, lease=LEASE, restart_lost=True, block_ms=100
    )
    async with serving(rescuer):
        await wait_for(lambda: served == [victim.event_id] and rescuer.busy == 0, timeout=20)

    assert rescuer.stats["reclaimed"] == 1 and rescuer.stats["lost_ended"] == 0
    ends = await events(channel, "run.end")
    assert [(e.run_id, e.error_code) for e in ends if e.run_id == start.run_id] == [
        (start.run_id, "agent-lost")
    ]
    starts = await events(channel, "run.start")
    assert len(starts) == 2 and starts[1].input_event_id == victim.event_id
    assert (await run_ends(channel))[starts[1].run_id].reason == "complete"
    assert await bus.pool(pool).pending_count() == 0


async def test_an_invocation_is_never_run_twice_at_once_across_processes(
    redis_url: str, bus: ait.Bus, channel_name: str, spawn: Spawn
) -> None:
    """Handlers take longer than the lease (1 s): renewals, from another process and from
    this one, keep every invocation with the worker that took it."""
    pool = pool_name()
    channels = [bus.channel(f"{channel_name}-{i}") for i in range(6)]
    slow_worker = ["--lease", "1", "--concurrency", "2", "--tokens", "25", "--delay", "0.1"]
    other = spawn(redis_url, pool, *slow_worker)

    running: dict[str, int] = {}
    calls: dict[str, int] = {}
    overlap: list[str] = []

    async def handler(run: ait.Run) -> None:
        assert run.invocation.input_event_id is not None
        key = run.invocation.input_event_id
        calls[key] = calls.get(key, 0) + 1
        running[key] = running.get(key, 0) + 1
        if running[key] > 1:
            overlap.append(key)
        try:
            await run.start()
            provider = ScriptedProvider([f"t{i} " for i in range(25)], delay=0.1)
            result = await run.pipe(provider.stream())
            await run.end(result.reason)
        finally:
            running[key] -= 1

    local = ait.AgentWorker(bus, handler, pool=pool, lease=1, concurrency=2, block_ms=100)
    async with serving(local):
        inputs = [(await enqueue_input(bus, ch, pool))[0] for ch in channels]

        async def ended() -> int:
            return sum([len(await run_ends(ch)) for ch in channels])

        with anyio.fail_after(30):
            while await ended() < 6:
                await anyio.sleep(0.05)
        await anyio.sleep(1.5)  # past another lease: any wrongful reclaim would show now
    assert other.proc.poll() is None, other.output()

    assert overlap == []
    assert all(n == 1 for n in calls.values())
    for ch, sent in zip(channels, inputs, strict=True):
        starts = await events(ch, "run.start")
        assert [s.input_event_id for s in starts] == [sent.event_id]
        (end,) = await events(ch, "run.end")
        assert end.reason == "complete", end
    assert 0 < sum(calls.values()) < 6  # both processes served some
    assert local.stats["reclaimed"] == 0
    assert await bus.pool(pool).pending_count() == 0


async def test_two_workers_one_invocation_one_handler_call(bus: ait.Bus, channel_name: str) -> None:
    channel = bus.channel(channel_name)
    pool = pool_name()
    calls: list[str] = []
    running = 0
    most = 0

    def make(name: str) -> Handler:
        async def handler(run: ait.Run) -> None:
            nonlocal running, most
            calls.append(name)
            running += 1
            most = max(most, running)
            try:
                await run.start()
                await run.pipe(ScriptedProvider([f"t{i}" for i in range(25)], delay=0.1).stream())
                await run.end()
            finally:
                running -= 1

        return handler

    first = ait.AgentWorker(bus, make("first"), pool=pool, lease=1, block_ms=100)
    second = ait.AgentWorker(bus, make("second"), pool=pool, lease=1, block_ms=100)
    async with serving(first), serving(second):
        await enqueue_input(bus, channel, pool)
        await wait_for_event(channel, lambda e: isinstance(e, ait.RunEnd), timeout=10)
        await anyio.sleep(1.5)
    assert len(calls) == 1 and most == 1
    assert first.stats["reclaimed"] == second.stats["reclaimed"] == 0
    assert len(await events(channel, "run.start")) == 1
    assert await bus.pool(pool).pending_count() == 0
