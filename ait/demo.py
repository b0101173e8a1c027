"""The demo: what the bus guarantees, shown live on an embedded Redis.

Run it with `scripts/demo` (or `python -m ait.demo`). A publisher streams a short reply
into a channel as deltas through the coalescing writer; two subscribers follow it live;
one of them disconnects halfway and comes back, resuming from the last entry it saw: it
ends with exactly the same sequence as the one that never left.
"""

from __future__ import annotations

import sys
import time

import anyio

from .bus import Bus, Channel
from .events import Input, Output, RunEnd
from .ids import new_id

REPLY = (
    "Redis Streams give every event of a conversation one total order. "
    "Readers remember the last entry id they saw, so after any disconnect "
    "they resume exactly there: no gap, no duplicate."
).split(" ")


def say(who: str, text: str) -> None:
    sys.stdout.write(f"{who:>10} | {text}\n")
    sys.stdout.flush()


async def publisher(channel: Channel, message_id: str) -> None:
    await channel.publish(
        Input(event_id=new_id(), message_id=message_id, role="user", client_id="demo",
              payload={"text": "How do ait subscribers resume?"})
    )  # fmt: skip
    async with channel.writer() as out:
        for i, word in enumerate(REPLY):
            out.send(
                Output(run_id="run-1", message_id="reply-1", role="assistant", parent=message_id,
                       payload=[{"type": "text-delta", "id": "t0", "delta": word + " "}])
            )  # fmt: skip
            if i % 6 == 5:
                say("publisher", f"sent {i + 1} deltas")
            await anyio.sleep(0.03)
    await channel.publish(RunEnd(run_id="run-1", invocation_id="inv-1", reason="complete"))
    say("publisher", f"done: {len(REPLY)} deltas in {out.entries_written} entries")


async def steady(channel: Channel, after: str, seen: list[str], done: anyio.Event) -> None:
    text = ""
    async with channel.subscribe(after=after) as sub:
        async for entry_id, event in sub:
            seen.append(entry_id)
            if isinstance(event, Output):
                text += "".join(item["delta"] for item in event.payload)
            if isinstance(event, RunEnd):
                break
    say("steady", f"saw {len(seen)} entries: {text.strip()[:60]}...")
    done.set()


async def flaky(channel: Channel, after: str, seen: list[str], done: anyio.Event) -> None:
    cursor = after
    async with channel.subscribe(after=cursor) as sub:
        async for entry_id, _ in sub:
            seen.append(entry_id)
            if len(seen) == 3:
                cursor = sub.last_id
                break
    say("flaky", f"disconnects after {len(seen)} entries (last id {cursor})")
    await anyio.sleep(0.4)
    say("flaky", "reconnects, resuming after its last id")
    async with channel.subscribe(after=cursor) as sub:
        async for entry_id, event in sub:
            seen.append(entry_id)
            if isinstance(event, RunEnd):
                break
    say("flaky", f"saw {len(seen)} entries in all")
    done.set()


async def main() -> int:
    started = time.monotonic()
    say("demo", "starting an embedded redis-server (no setup needed)")
    async with Bus.embedded() as bus:
        assert bus.server is not None
        say("demo", f"redis at {bus.url}")
        channel = bus.channel(f"demo-{new_id()[:8]}")
        start = await channel.last_id() or "0-0"
        steady_seen: list[str] = []
        flaky_seen: list[str] = []
        done_a, done_b = anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(steady, channel, start, steady_seen, done_a)
            tg.start_soon(flaky, channel, start, flaky_seen, done_b)
            await anyio.sleep(0.1)
            await publisher(channel, "question-1")
            with anyio.fail_after(10):
                await done_a.wait()
                await done_b.wait()
        stored = [entry_id for entry_id, _ in await channel.read(count=10_000)]
    same = steady_seen == flaky_seen == stored
    say("demo", f"both subscribers saw the same {len(stored)} entries in order: {same}")
    say("demo", f"finished in {time.monotonic() - started:.1f} s")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
