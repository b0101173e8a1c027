"""LostRunWatch: a client ends the runs it shows whose agent stopped heartbeating.

An agent that dies outside any worker (an HTTP doorbell's process, killed mid-answer)
publishes no `run.end`, and no worker takes its invocation over. Its run's record in the
channel's active-run hash stops changing. A `ClientSession` (with `end_lost_runs`, the
default) watches the records of the runs its tree shows active, and ends a run whose
record it has seen **unchanged** for the bound: `lost_after` (three of the agent's
heartbeats and a grace), or the session's own `lost_after`.

The rule counts on this client's own clock only (how long it has seen the same record),
never compares clocks across machines. The end is the shared one (`ActiveRuns.end_lost`):
it publishes `run.end` (error, `agent-lost`) only if the record is still the one seen, so
one `run.end` goes out however many clients notice at once, and a heartbeat that lands
first (a slow agent) wins.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from ..bus import Channel
from ..bus.active import DEFAULT_HEARTBEAT, LOST_GRACE, ActiveRuns, lost_after, unpack_record
from ..conversation import Tree
from ..errors import AitError, BusConnectionError, BusTimeoutError

__all__ = ["LostRunWatch"]

# Checks per bound: a run is ended at most a quarter of the bound late (or a record first
# seen a quarter late), so within 1.25 bounds of its agent's last heartbeat.
_CHECKS_PER_BOUND = 4


class LostRunWatch:
    """Watches the runs a tree shows active; see the module docstring.

    Args:
        channel: the channel the tree folds.
        tree: the tree whose active runs it watches.
        client_id: who notices (named in the `run.end`'s message).
        lost_after: a fixed bound in seconds; None derives it from each record.
        report: called with the errors of its reads and writes, except Redis being away
            (the session's subscription reconnects and the bus reports that).
    """

    def __init__(
        self,
        channel: Channel,
        tree: Tree,
        *,
        client_id: str,
        lost_after: float | None,
        report: Callable[[AitError], None],
    ) -> None:
        self.tree = tree
        self.client_id = client_id
        self.lost_after = lost_after
        self.report = report
        self._active = ActiveRuns(channel)
        # Run id -> the record last seen, and when (this loop's clock) it was first seen.
        self._seen: dict[str, tuple[bytes, float]] = {}
        self._wake = anyio.Event()
        #: Runs this session ended as lost.
        self.ended = 0

    def run_started(self) -> None:
        """A run started or resumed: look at its record now, not at the next check."""
        self._wake.set()

    def bound(self, raw: bytes) -> float:
        return self.lost_after or lost_after(unpack_record(raw))

    async def run(self) -> None:
        while True:
            interval = await self.check()
            with anyio.move_on_after(interval):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def check(self) -> float:
        """Look at the records of the runs shown active; end those silent for their bound.
        Returns the seconds until the next check."""
        idle = (self.lost_after or 3 * DEFAULT_HEARTBEAT + LOST_GRACE) / _CHECKS_PER_BOUND
        live = [rid for rid, node in self.tree.run_nodes.items() if node.status == "active"]
        try:
            records = await self._active.records(live) if live else {}
        except AitError as exc:  # look again later
            self._failed(exc)
            return idle
        self._seen = {rid: seen for rid, seen in self._seen.items() if rid in records}
        now = anyio.current_time()
        wait = idle
        for run_id, raw in records.items():
            bound = self.bound(raw)
            seen = self._seen.get(run_id)
            if seen is None or seen[0] != raw:  # new, or a heartbeat landed: the clock restarts
                self._seen[run_id] = seen = (raw, now)
            elif now - seen[1] >= bound:
                if not await self._end(run_id, raw, bound):  # failed: at the next check
                    wait = min(wait, bound / _CHECKS_PER_BOUND)
                continue
            wait = min(wait, bound / _CHECKS_PER_BOUND, seen[1] + bound - now)
        return wait

    async def _end(self, run_id: str, raw: bytes, bound: float) -> bool:
        silent = f"no heartbeat for {bound:g} s, noticed by client {self.client_id}"
        try:
            ended = await self._active.end_lost(
                run_id, raw, message=f"the agent answering this run died ({silent})"
            )
        except AitError as exc:
            self._failed(exc)
            return False
        del self._seen[run_id]
        self.ended += ended is not None
        return True

    def _failed(self, error: AitError) -> None:
        if not isinstance(error, BusConnectionError | BusTimeoutError):
            self.report(error)
