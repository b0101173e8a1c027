"""An HTTP-doorbell agent for the lost-run tests (run as a script; not a test module).

    python doorbell_agent.py URL CHANNEL INPUT_EVENT_ID --heartbeat 0.2 --tokens 1000

What an HTTP endpoint does with a posted invocation: an `AgentSession` of its own (no
`AgentWorker`, so no queue entry, no lease, no crash recovery), one run answered slowly
with a ScriptedProvider. It prints `start <run-id>` once the run started, so the test knows
what it is about to kill, and `end <reason>` if it ever finishes.
"""

from __future__ import annotations

import argparse

import anyio

import ait
from ait.testing import ScriptedProvider


async def main(args: argparse.Namespace) -> None:
    invocation = ait.Invocation(channel=args.channel, input_event_id=args.input_event_id)
    provider = ScriptedProvider([f"t{i} " for i in range(args.tokens)], delay=args.delay)
    async with (
        ait.Bus.from_url(args.url) as bus,
        ait.AgentSession(bus, args.channel, heartbeat=args.heartbeat) as session,
    ):
        run = session.create_run(invocation)
        await run.start()
        print(f"start {run.run_id}", flush=True)  # noqa: T201
        result = await run.pipe(provider.stream())
        await run.end(result.reason, error=result.error)
        print(f"end {result.reason}", flush=True)  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("channel")
    parser.add_argument("input_event_id")
    parser.add_argument("--heartbeat", type=float, default=0.2)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--delay", type=float, default=0.02)
    anyio.run(main, parser.parse_args())
