"""An observer: print every run on a channel as it happens, without taking part.

What it shows: a `ClientSession` that never writes (`invoke=None`) still folds every event
of the channel into its tree. `view.on_change` calls back after each change; comparing
`session.tree.runs()` (an `ait.RunInfo` per run: status, client, messages) with what was
printed before tells which runs started, suspended, resumed or ended. Token counts come
from the `usage` the agent's provider put on each message.

Run it next to a chat on the same Redis, or with --demo to watch some runs made here:

    python client_examples/observer.py --channel chat --redis URL
    python client_examples/observer.py --demo --count 2
"""

from __future__ import annotations

import argparse
import os

import anyio

import ait
from ait.testing import ScriptedProvider


def describe(session: ait.ClientSession, run: ait.RunInfo, before: str | None) -> str:
    """One line about a run whose status just changed from `before`."""
    name = f"run {run.run_id[:8]}"
    if run.status == "active":
        if before == "suspended":
            return f"{name} resumed"
        kind = "regenerating an answer" if run.regenerate else "answering a message"
        return f"{name} started: {kind} of {run.client_id}"
    if run.status == "suspended":
        return f"{name} suspended: it waits for a tool result or an approval"
    messages = [session.tree.message(mid) for mid in run.message_ids]
    tokens = sum((m.usage or {}).get("completion_tokens", 0) for m in messages if m)
    error = f" ({run.error.code}: {run.error.message})" if run.error else ""
    return f"{name} ended: {run.status}{error}, {tokens} tokens, {len(messages)} message(s)"


async def observe(session: ait.ClientSession, count: int | None) -> None:
    printed = {run.run_id: run.status for run in session.tree.runs()}  # history: seen already
    print(f"observing {session.channel.name} ({len(printed)} runs in history)", flush=True)
    enough = anyio.Event()
    finished = 0

    def on_change(change: ait.ViewChange) -> None:
        nonlocal finished
        for run in session.tree.runs():
            before = printed.get(run.run_id)
            if run.status == before or run.status == "pending":
                continue
            if before is None and run.status != "active":  # started and ended between changes
                print(describe(session, run.model_copy(update={"status": "active"}), None))
            printed[run.run_id] = run.status
            print(describe(session, run, before), flush=True)
            if run.status in ("complete", "cancelled", "error"):
                finished += 1
                if count is not None and finished >= count:
                    enough.set()

    session.view.on_change(on_change)
    await enough.wait()


async def demo(bus: ait.Bus, channel: str) -> None:
    """Some runs to watch: a scripted agent, a client that asks twice and cancels once."""
    provider = ScriptedProvider(["Sure", ", ", "here", " it", " is"], delay=0.05)

    async def answer(run: ait.Run) -> None:
        await run.start()
        result = await run.pipe(provider.stream())
        await run.end(result.reason)

    worker = ait.AgentWorker(bus, answer, pool="observer-demo")
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        async with ait.ClientSession(bus, channel, client_id="alice", pool="observer-demo") as me:
            await (await me.view.send("one")).wait()
            second = await me.view.send("two")
            await anyio.sleep(0.12)
            await second.cancel()
            await second.wait()
        worker.stop()


async def main(args: argparse.Namespace) -> None:
    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus, anyio.create_task_group() as tg:
        async with ait.ClientSession(bus, args.channel, client_id="observer", invoke=None) as me:
            if args.demo:
                tg.start_soon(demo, bus, args.channel)
            await observe(me, args.count)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=os.environ.get("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--channel", default="chat", help="the channel to watch")
    parser.add_argument("--count", type=int, help="exit after this many runs ended")
    parser.add_argument("--demo", action="store_true", help="also make some runs to watch")
    anyio.run(main, parser.parse_args())
