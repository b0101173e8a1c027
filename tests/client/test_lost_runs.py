"""A run whose agent died outside any worker: clients notice its heartbeats stopped and end
it `agent-lost` within the bound, once however many notice; a slow agent is not ended.

The agent is a real process (`doorbell_agent.py`: an `AgentSession` answering one
invocation, as an HTTP doorbell's endpoint does), frozen with SIGSTOP or killed with
SIGKILL mid-answer, so it publishes nothing more: no `run.end`, no heartbeat.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import msgpack
import pytest

import ait
from ait.bus.active import LOST_GRACE, ActiveRuns
from ait.client import ActiveRun
from ait.testing import ScriptedProvider

from .helpers import LIMIT, Connect, ended, entries, events, started, wait_for

SCRIPT = Path(__file__).with_name("doorbell_agent.py")
HEARTBEAT = 0.2
#: Three heartbeats and the grace: how long a client lets a record go unrefreshed.
BOUND = 3 * HEARTBEAT + LOST_GRACE
#: A client checks four times per bound, so it ends a run at most 1.25 bounds after its
#: agent's last heartbeat; the slack is for a loaded machine (2 cores, other test jobs).
WITHIN = 1.25 * BOUND + 1.5


class AgentProcess:
    """The doorbell agent answering `active`'s input, in a process of its own."""

    def __init__(self, url: str, active: ActiveRun) -> None:
        channel = active.session.channel.name
        command = [sys.executable, str(SCRIPT), url, channel, active.input_event_id]
        self.proc = subprocess.Popen(
            [*command, "--heartbeat", str(HEARTBEAT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    async def line(self) -> str:
        assert self.proc.stdout is not None
        with anyio.fail_after(LIMIT):
            return await anyio.to_thread.run_sync(self.proc.stdout.readline, abandon_on_cancel=True)

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@asynccontextmanager
async def answering(url: str, active: ActiveRun) -> AsyncIterator[AgentProcess]:
    """The agent process, mid-answer: its run started and its first output arrived."""
    agent = AgentProcess(url, active)
    try:
        line = await agent.line()
        assert line.startswith("start "), line
        assert line.split()[1] == await started(active)
        with anyio.fail_after(LIMIT):
            async for _ in active.events():
                break
        yield agent
    finally:
        agent.kill()


async def run_ends(channel: ait.Channel, run_id: str) -> list[ait.RunEnd]:
    return [e for e in await events(channel, "run.end") if e.run_id == run_id]


async def test_a_killed_agent_s_run_ends_agent_lost_within_the_bound(
    connect: Connect, redis_url: str
) -> None:
    client = await connect(invoke=None)
    active = await client.view.send("Count slowly.")
    async with answering(redis_url, active) as agent:
        agent.kill()
        killed = time.monotonic()
        info = await ended(active)
        elapsed = time.monotonic() - killed

    print(f"lost run ended {elapsed:.2f} s after SIGKILL (bound {BOUND:g} s)")  # noqa: T201
    assert info.status == "error"
    assert info.error is not None and info.error.code == "agent-lost"
    assert f"no heartbeat for {BOUND:g} s, noticed by client alice" in info.error.message
    assert 3 * HEARTBEAT < elapsed < WITHIN
    assert client.view.messages[-1].status == "error"  # the partial answer, marked
    assert len(await run_ends(client.channel, info.run_id)) == 1
    assert await ActiveRuns(client.channel).records() == {}
    assert client.lost_runs is not None and client.lost_runs.ended == 1


async def test_clients_that_notice_together_publish_one_run_end(
    connect: Connect, redis_url: str
) -> None:
    watchers = [await connect(name) for name in ("alice", "bob", "carol")]
    active = await watchers[0].view.send("Count slowly.")
    async with answering(redis_url, active) as agent:
        run_id = await started(active)
        agent.kill()
        for watcher in watchers:
            with anyio.fail_after(LIMIT):
                await wait_for(lambda w=watcher: w.tree.run(run_id).status == "error", LIMIT)  # type: ignore[union-attr]

    (end,) = await run_ends(watchers[0].channel, run_id)
    assert end.error_code == "agent-lost"
    assert sum(w.lost_runs.ended for w in watchers if w.lost_runs is not None) == 1
    for watcher in watchers:
        info = watcher.tree.run(run_id)
        assert info is not None and info.error is not None and info.error.code == "agent-lost"


async def test_an_agent_slow_within_the_bound_is_not_ended(
    connect: Connect, redis_url: str
) -> None:
    """Frozen (SIGSTOP) for less than the bound, then thawed: its heartbeat lands late, but
    in time, and its run goes on. Killed afterwards, it is ended as usual."""
    client = await connect(invoke=None)
    active = await client.view.send("Count slowly.")
    async with answering(redis_url, active) as agent:
        run_id = await started(active)
        agent.signal(signal.SIGSTOP)
        await anyio.sleep(BOUND - 1.4)  # the freeze itself: no heartbeat for 1.2 s
        shown = len(client.view.messages[-1].text)
        agent.signal(signal.SIGCONT)
        # Thawed: it streams again, and beats.
        await wait_for(lambda: len(client.view.messages[-1].text) > shown, LIMIT)
        assert client.tree.run(run_id).status == "active"  # type: ignore[union-attr]
        assert await run_ends(client.channel, run_id) == []

        agent.kill()
        info = await ended(active)
    assert info.error is not None and info.error.code == "agent-lost"
    assert len(await run_ends(client.channel, run_id)) == 1


async def test_an_agent_slow_past_the_bound_sees_its_run_ended_and_stops(
    bus: ait.Bus, connect: Connect
) -> None:
    """A bound shorter than the agent's heartbeat (`lost_after`) takes a live agent for
    dead: the client ends its run, and the agent stops, writing nothing more."""
    client = await connect(invoke=None, lost_after=0.5)
    active = await client.view.send("Count slowly.")
    invocation = active.to_invocation()
    async with ait.AgentSession(bus, invocation.channel, heartbeat=60) as session:
        run = session.create_run(invocation)
        await run.start()
        with anyio.fail_after(LIMIT):
            result = await run.pipe(ScriptedProvider(["tick "] * 1000, delay=0.02).stream())
        await run.end(result.reason, error=result.error)  # does nothing: it is over

    info = await ended(active)
    assert info.error is not None and info.error.code == "agent-lost"
    assert "no heartbeat for 0.5 s" in info.error.message
    assert result.reason == "error" and isinstance(result.error, ait.RunLost)
    assert run.lost and run.state == "ended"
    with pytest.raises(ait.UsageError):
        await run.pipe(ScriptedProvider(["more"]).stream())
    (end,) = await run_ends(client.channel, info.run_id)
    assert end.error_code == "agent-lost"
    # At most the batch on its way when the end landed follows it: no finish, no more.
    kinds = [e.type for _, e in await entries(client.channel)]
    after = kinds[kinds.index("run.end") + 1 :]
    assert after in ([], ["output"])


async def test_a_watch_that_cannot_end_a_lost_run_reports_it_and_tries_again(
    bus: ait.Bus, connect: Connect
) -> None:
    """Redis refuses the end (here: the script): a session error, then the next check
    ends the run. The record here belongs to no process at all: nobody refreshes it."""
    client = await connect(invoke=None, lost_after=0.3)
    question = await client.view.send("Anyone?")
    start = ait.RunStart(
        run_id="r-ghost",
        invocation_id="i-ghost",
        input_event_id=question.input_event_id,
        input_message_id=question.message_id,
        run_client_id="alice",
        parent=question.message_id,
    )
    active = ActiveRuns(client.channel)
    redis = bus.handle.client

    async def refused(*_args: object) -> object:
        await redis.execute_command("EVAL", "return redis.error_reply('NOPERM no')", 0)
        raise AssertionError("unreachable")

    redis.eval = refused  # type: ignore[method-assign]
    try:
        record = ["HSET", active.key, "r-ghost", msgpack.packb({"invocation-id": "i-ghost"})]
        await client.channel.publish_many([start], with_commands=[record])
        with anyio.fail_after(LIMIT):
            async for error in client.errors():
                assert isinstance(error, ait.BusError)
                assert "unable to end the lost run 'r-ghost'" in str(error)
                break
        assert client.tree.run("r-ghost").status == "active"  # type: ignore[union-attr]
    finally:
        del redis.eval
    info = await ended(question)
    assert info.error is not None and info.error.code == "agent-lost"
    assert info.error.message.endswith("(no heartbeat for 0.3 s, noticed by client alice)")
