"""The multitask policies: what a new input's run does, before it starts, about the runs
active on its channel. `parallel` nothing; `interrupt` cancels them and waits for them to
end; `reject` starts and ends the run at once with error `rejected`; `enqueue` waits its
turn.

`enqueue` inputs start one after another, in channel order. Each waits in the channel's
queue, a hash `<prefix>{<channel>}:queue` (input event id -> MessagePack map of its
`entry-id` and `alive-at`, refreshed while it waits), and leaves it in the transaction of
its `run.start`, so that another agent reading the queue and the active-run hash at once
sees it in one or the other. It starts when none of these is left:

- a run that was active when it began to wait;
- an `enqueue` input before it on the channel still in the queue, or whose run is active;
- an `enqueue` input before it on the channel that no agent has queued yet, nor started,
  for up to `input_timeout` (its agent may be on its way; one that never comes does not
  hold the queue up for longer).

A waiter whose agent died is dropped from the queue after three heartbeats, as a run's
record is from the active-run hash; `enqueue_timeout` bounds the whole wait.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, cast

import anyio
import msgpack  # pyright: ignore[reportMissingTypeStubs]

from ..bus._redis import translate_errors
from ..errors import AitError, RunRejected
from ..events import Cancel, Multitask, RunEnd, RunStart
from ..ids import entry_id_key, new_id
from .history import input_answered

if TYPE_CHECKING:
    from .run import Run
    from .session import AgentSession

__all__ = ["make_way"]

_pack: Any = msgpack.packb  # pyright: ignore


async def make_way(session: AgentSession, run: Run, policy: Multitask) -> list[list[Any]]:
    """Make way for `run` as its input asked, before it starts; return the commands its
    `run.start` transaction must also run."""
    if policy == "parallel":
        return []
    if policy == "enqueue":
        return await _Turn(session, run).wait()
    others = [rid for rid in await session.active_runs() if rid != run.run_id]
    if not others:
        return []
    if policy == "reject":
        await _reject(session, run, others)  # raises RunRejected
    # interrupt
    cancels = [
        Cancel(event_id=new_id(), client_id=f"agent:{session.agent_id}", run_id=rid)
        for rid in others
    ]
    await session.channel.publish_many(cancels)
    await _wait_gone(session, others, session.interrupt_timeout)
    return []


async def _reject(session: AgentSession, run: Run, others: list[str]) -> None:
    assert run.input is not None and run.run_id is not None
    message = f"another run is active on this channel ({', '.join(others)}); input rejected"
    start = RunStart(
        run_id=run.run_id,
        invocation_id=run.invocation_id,
        input_event_id=run.input.event_id,
        input_message_id=run.input.message_id,
        run_client_id=run.input.client_id,
        parent=run.anchor,
    )
    end = RunEnd(
        run_id=run.run_id,
        invocation_id=run.invocation_id,
        reason="error",
        error_code="rejected",
        error_message=message,
    )
    claim = session.settle_input_claim(run.input.event_id)
    await session.channel.publish_many([start, end], with_commands=[claim])
    run.state = "ended"
    session.release(run)
    raise RunRejected(run.run_id, message)


async def _wait_gone(session: AgentSession, run_ids: list[str], limit: float) -> None:
    with anyio.move_on_after(limit):
        while True:
            active = await session.active_runs()
            remaining = [rid for rid in run_ids if rid in active]
            if not remaining:
                return
            with anyio.move_on_after(1.0):  # also poll: another agent may have crashed
                await session.wait_ended(remaining[0])


class _Turn:
    """An `enqueue` input waiting for its turn (see the module docstring)."""

    def __init__(self, session: AgentSession, run: Run) -> None:
        assert run.input is not None and run.input_entry_id is not None
        self.session = session
        self.run = run
        self.key = session.channel.key_for("queue")
        self.event_id = run.input.event_id
        self.entry_id = run.input_entry_id
        self.position = entry_id_key(run.input_entry_id)
        #: Runs it waits for: those active when it began; inputs queued before it.
        self.wait_for: set[str] | None = None
        self.earlier: set[str] = set()
        #: Earlier inputs nobody queued or started yet: since when, by event id.
        self.unseen_since: dict[str, float] = {}

    async def wait(self) -> list[list[Any]]:
        """Wait for the turn (up to `enqueue_timeout`); return the command that takes the
        input out of the queue, for the `run.start` transaction."""
        session = self.session
        try:
            # Every input of the rewind window: the enqueued ones before this one count.
            await session.catch_up()
            with anyio.move_on_after(session.enqueue_timeout):
                while not await self._my_turn():
                    moved = session.lifecycle_moved()
                    with anyio.move_on_after(1.0):  # also poll: a waiter may have died
                        await moved.wait()
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                try:
                    with translate_errors(f"leave the queue of {session.channel.name!r}"):
                        await session.bus.handle.client.hdel(self.key, self.event_id)
                except AitError:  # Redis away: the entry goes stale, and is dropped
                    pass
            raise
        return [["HDEL", self.key, self.event_id]]

    async def _my_turn(self) -> bool:
        session = self.session
        record = {"entry-id": self.entry_id, "alive-at": math.floor(time.time() * 1000)}
        client = session.bus.handle.client
        with translate_errors(f"read the queue of {session.channel.name!r}"):
            # At once: a run leaves the queue in the transaction of its start, so it is
            # seen waiting or active, never neither.
            pipe = client.pipeline(transaction=not session.bus.handle.cluster)
            pipe.hset(self.key, self.event_id, _pack(record))
            pipe.hgetall(session.active_key)
            pipe.hgetall(self.key)
            _, raw_active, raw_queue = await pipe.execute()
        active = await session.live_records(session.active_key, raw_active, "active runs")
        queue = await session.live_records(self.key, raw_queue, "enqueued inputs")
        if self.wait_for is None:
            self.wait_for = {rid for rid in active if rid != self.run.run_id}
        before = {
            event_id
            for event_id, waiting in queue.items()
            if event_id != self.event_id and _position(waiting) < self.position
        }
        known = session.enqueued_before(self.position)
        self.earlier |= before | set(known)
        for run_id, started in active.items():
            if run_id in self.wait_for or started.get("input-event-id") in self.earlier:
                return False
        if before:
            return False
        starting = {started.get("input-event-id") for started in active.values()}
        now = anyio.current_time()
        for event_id, entry_id in known.items():
            if event_id in starting:
                continue
            if await input_answered(session.channel, entry_id, event_id) is not None:
                session.forget_enqueued(event_id)  # it ran: never wait for it again
                continue
            since = self.unseen_since.setdefault(event_id, now)
            if now - since < session.input_timeout:
                return False  # its agent has not queued it yet: give it time
        return True


def _position(record: dict[str, Any]) -> tuple[int, int]:
    """Where a queue record's input is on the channel (a garbled one counts as first)."""
    try:
        return entry_id_key(cast(str, record.get("entry-id")))
    except Exception:
        return (0, 0)
