"""A worker process for the crash tests (run as a script; not a test module).

    python crash_worker.py URL POOL --lease 2 --tokens 100000 --delay 0.01 --consumer doomed

It serves pool POOL on the Redis at URL with a slow ScriptedProvider handler, prints
`ready` once serving, and prints `start <input-event-id> <run-id>` as each run starts, so
the test knows what it is about to kill.
"""

from __future__ import annotations

import argparse
import sys

import anyio

import ait
from ait.testing import ScriptedProvider


async def main(args: argparse.Namespace) -> None:
    async def handler(run: ait.Run) -> None:
        await run.start()
        assert run.input is not None
        print(f"start {run.input.event_id} {run.run_id}", flush=True)  # noqa: T201
        provider = ScriptedProvider([f"t{i} " for i in range(args.tokens)], delay=args.delay)
        result = await run.pipe(provider.stream(await run.load_conversation()))
        await run.end(result.reason, error=result.error)

    async with ait.Bus.from_url(args.url) as bus:
        worker = ait.AgentWorker(
            bus,
            handler,
            pool=args.pool,
            lease=args.lease,
            concurrency=args.concurrency,
            consumer=args.consumer,
            block_ms=200,
        )
        await worker.pool.ensure_group()
        print("ready", flush=True)  # noqa: T201
        await worker.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("pool")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--consumer", default="doomed")
    anyio.run(main, parser.parse_args())
    sys.exit(0)
