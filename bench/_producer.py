"""The producer process of the cross-process latency scenario (run by bench/bus.py).

    python bench/_producer.py {ait|raw} URL CHANNEL COUNT INTERVAL_S HEADERS_JSON

Connects, prints `ready`, waits for `go` on stdin, then publishes COUNT deltas, one every
INTERVAL_S seconds on an absolute schedule. Each delta carries `ts`: time.monotonic_ns()
(CLOCK_MONOTONIC, the same clock in every process of the machine) taken just before the
publish call, and `seq`. `ait` publishes with `await channel.publish(Output(...))`; `raw`
with `await r.xadd(key, fields)` of the same envelope, packed with msgpack here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

import anyio
import msgpack
import redis.asyncio as aioredis


async def main(mode: str, url: str, channel: str, count: int, interval: float, hdr: str) -> None:
    headers: dict[str, str] = json.loads(hdr)
    stdin = sys.stdin
    if mode == "ait":
        import ait

        async with ait.Bus.from_url(url) as bus:
            target = bus.channel(channel)
            await target.length()  # a pooled connection, ready before the clock starts

            async def publish(item: dict[str, object]) -> None:
                await target.publish(
                    ait.Output(
                        run_id=headers["run-id"],
                        message_id=headers["message-id"],
                        role=headers["role"],
                        parent=headers["parent"],
                        payload=[item],
                    )
                )

            await run(publish, count, interval, stdin)
    else:
        r = aioredis.Redis.from_url(url)
        key = f"ait:{{{channel}}}:events"
        packed_headers = msgpack.packb(headers)
        await r.ping()

        async def publish(item: dict[str, object]) -> None:
            fields = {
                b"v": b"1",
                b"t": b"output",
                b"h": packed_headers,
                b"d": msgpack.packb([item]),
            }
            await r.xadd(key, fields)

        try:
            await run(publish, count, interval, stdin)
        finally:
            await r.aclose()


async def run(
    publish: Callable[[dict[str, object]], Awaitable[None]],
    count: int,
    interval: float,
    stdin: TextIO,
) -> None:
    print("ready", flush=True)
    line = await anyio.to_thread.run_sync(stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"producer: expected 'go', got {line!r}")
    start = time.monotonic()
    for seq in range(count):
        delay = start + seq * interval - time.monotonic()
        if delay > 0:
            await anyio.sleep(delay)
        await publish(
            {"type": "text-delta", "delta": " tok", "ts": time.monotonic_ns(), "seq": seq}
        )
    print("done", flush=True)


if __name__ == "__main__":
    mode, url, channel, count, interval, hdr = sys.argv[1:7]
    anyio.run(main, mode, url, channel, int(count), float(interval), hdr, backend="asyncio")
