"""What a session keeps on Redis beside the channel: the active-run records (claimed,
refreshed every heartbeat, ended when their agent is lost) and the once-only claims on
fresh inputs.

`AgentSession` (session.py) takes these from `SessionRecords`; the attributes below are the
session's own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from ..bus import Bus, Channel
from ..bus._redis import translate_errors
from ..bus.active import ActiveRuns, lost_after, unpack_record
from ..errors import AitError

if TYPE_CHECKING:
    from .run import Run

__all__ = ["SessionRecords", "input_claim_key"]

# A heartbeat refreshes only records still there: a run that ended while the beat was on
# its way must not be recorded again (it would block `reject` until it went stale).
_REFRESH = """
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
"""

# A stale queue record is removed only if it is still the one read: it may have been
# refreshed.
_REMOVE_STALE = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
"""


# A fresh input's claim is given back only by the run that holds it, and kept alive (while
# its run waits to start) only while it is still that run's.
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_KEEP_CLAIMS = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
"""


def input_claim_key(channel: Channel, input_event_id: str) -> str:
    """The key of the once-only claim on a fresh input (`<prefix>{<channel>}:claim:<id>`)."""
    return channel.key_for(f"claim:{input_event_id}")


class SessionRecords:
    """The records half of `AgentSession`."""

    bus: Bus
    channel: Channel
    heartbeat: float
    agent_id: str
    active_key: str
    _input_claims: dict[str, str]

    def report(self, error: BaseException) -> None:
        raise NotImplementedError

    async def active_runs(self) -> dict[str, dict[str, Any]]:
        """Runs active on the channel now (any agent), by run id.

        A record not refreshed for three heartbeats and a grace (`heartbeat-ms` in the
        record, else this session's `heartbeat`) belongs to an agent that died outside a
        worker: it is left out, and its run ended `agent-lost` (only if the record is
        still the one read: a slow agent's late heartbeat wins).
        """
        with translate_errors(f"read the active runs of {self.channel.name!r}"):
            reply = await self.bus.handle.client.hgetall(self.active_key)
        return await self.live_records(self.active_key, reply, "active runs")

    async def live_records(
        self, key: str, reply: dict[bytes, bytes], what: str
    ) -> dict[str, dict[str, Any]]:
        """The records of a hash read from `key` (the active runs, the `enqueue` queue), by
        field, unpacked. Those not refreshed (`alive-at`) in time are left out: a lost run
        is ended `agent-lost` (`ActiveRuns.end_lost`), a stale queue entry removed; either
        only if its record is unchanged since it was read."""
        records: dict[str, dict[str, Any]] = {}
        stale: list[Any] = []
        now = time.time() * 1000
        runs = key == self.active_key
        for raw_id, raw in reply.items():
            record = unpack_record(raw)
            bound = lost_after(record, self.heartbeat) if runs else 3 * self.heartbeat
            alive = record.get("alive-at") or record.get("started-at") or 0
            if not (isinstance(alive, int | float) and alive < now - bound * 1000):
                records[raw_id.decode()] = record
            elif runs:
                await self._end_lost(raw_id.decode(), raw, bound)
            else:
                stale += [raw_id, raw]
        if stale:
            try:
                with translate_errors(f"remove stale {what} of {self.channel.name!r}"):
                    await self.bus.handle.client.eval(_REMOVE_STALE, 1, key, *stale)
            except AitError as exc:  # housekeeping: they are left out all the same
                self.report(exc)
        return records

    async def _end_lost(self, run_id: str, raw: bytes, bound: float) -> None:
        silent = f"no heartbeat for {bound:g} s, noticed by agent {self.agent_id}"
        try:
            await ActiveRuns(self.channel).end_lost(
                run_id, raw, message=f"the agent answering this run died ({silent})"
            )
        except AitError as exc:  # housekeeping: it is left out all the same
            self.report(exc)

    async def claim_active(self, run: Run) -> bool:
        """Record `run` in the active hash unless a record of its id is there already.

        How two agents woken for the same continuation agree on which one resumes it.
        """
        command = run.active_record()
        with translate_errors(f"claim run {run.run_id!r} on {self.channel.name!r}"):
            return bool(await self.bus.handle.client.hsetnx(*command[1:]))

    async def claim_input(self, run: Run, input_event_id: str) -> str | None:
        """Claim fresh input `input_event_id` for `run` (`SET NX` of its run id); return
        None when it is ours, else the run id of the holder.

        How two agents woken for the same input (a doorbell retried) agree on which one
        answers it. The claim lapses after three heartbeats unless refreshed: the session's
        heartbeat keeps it while the run waits to start, and the run's `run.start` deletes
        it (see `settle_input_claim`).
        """
        assert run.run_id is not None
        key = input_claim_key(self.channel, input_event_id)
        lapse = max(int(3 * self.heartbeat * 1000), 1)
        client = self.bus.handle.client
        with translate_errors(f"claim input {input_event_id!r} on {self.channel.name!r}"):
            for _ in range(3):  # a holder's claim may lapse between the two commands
                if await client.set(key, run.run_id, nx=True, px=lapse):
                    self._input_claims[key] = run.run_id
                    return None
                holder = await client.get(key)
                if holder is not None:
                    return holder.decode()
        return "?"

    def settle_input_claim(self, input_event_id: str) -> list[Any]:
        """The command that deletes the claim, for the transaction of its `run.start`:
        from then on the channel itself says the input is answered."""
        key = input_claim_key(self.channel, input_event_id)
        self._input_claims.pop(key, None)
        return ["DEL", key]

    async def give_back_input_claim(self, run: Run, input_event_id: str) -> None:
        """Delete the claim if `run` still holds it; best effort (it lapses anyway)."""
        key = input_claim_key(self.channel, input_event_id)
        self._input_claims.pop(key, None)
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                with translate_errors(f"give back input {input_event_id!r}"):
                    await self.bus.handle.client.eval(_GIVE_BACK, 1, key, run.run_id or "")
            except AitError:  # Redis away: the claim lapses on its own
                pass

    async def unclaim_active(self, run: Run) -> None:
        with translate_errors(f"unclaim run {run.run_id!r} on {self.channel.name!r}"):
            await self.bus.handle.client.hdel(self.active_key, run.run_id)

    async def _keep_input_claims(self) -> None:
        claims = dict(self._input_claims)
        lapse = max(int(3 * self.heartbeat * 1000), 1)
        with translate_errors(f"refresh the input claims on {self.channel.name!r}"):
            await self.bus.handle.client.eval(
                _KEEP_CLAIMS, len(claims), *claims, lapse, *claims.values()
            )

    async def refresh_records(self, runs: list[Run]) -> None:
        """One heartbeat: refresh the active-hash records of `runs`, skipping any whose
        record is gone (the run ended or suspended since the list was made)."""
        fields: list[Any] = []
        for run in runs:
            fields += run.active_record()[2:]
        with translate_errors(f"refresh the active runs of {self.channel.name!r}"):
            await self.bus.handle.client.eval(_REFRESH, 1, self.active_key, *fields)
