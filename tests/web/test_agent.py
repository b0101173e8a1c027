"""The bridge with a real agent worker: a message sent over HTTP is answered on the SSE
stream, and a cancel sent over HTTP (by input, before the run id is known; by run id)
ends its run as cancelled."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx

import ait
from ait.testing import ScriptedProvider

from ..agent.helpers import answer, slow
from ..agent.helpers import serving as running
from .helpers import bridge, serving, sse_events


async def _until_end(response: httpx.Response, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """Read events into `seen` until a run ends; that `run.end`."""
    events = response.extensions.setdefault("ait-sse", sse_events(response))
    with anyio.fail_after(20):
        async for sse in events:
            if sse.comment is not None:
                continue
            item = json.loads(sse.data[0])["event"]
            seen.append(item)
            if item["type"] == "run.end":
                return item
    raise AssertionError("the stream ended before the run")


async def test_send_is_answered_and_cancels_end_runs(bus: ait.Bus, channel_name: str) -> None:
    pool = f"pool-{channel_name}"
    quick = ScriptedProvider(["Hel", "lo"])
    long = slow(n=5000, delay=0.005)
    providers = iter([quick, long, long])

    async def handler(run: ait.Run) -> None:
        await answer(run, next(providers))

    worker = ait.AgentWorker(bus, handler, pool=pool, concurrency=2, block_ms=100)
    base = f"/channels/{channel_name}"
    user = {"x-user": "alice"}
    async with (
        running(worker),
        serving(bridge(bus, pool=pool).app) as url,
        httpx.AsyncClient(base_url=url, headers=user, timeout=20) as http,
        http.stream("GET", f"{base}/events", params={"after": "0-0"}) as stream,
    ):
        seen: list[dict[str, Any]] = []
        first = (await http.post(f"{base}/send", json={"content": "hi"})).json()
        end = await _until_end(stream, seen)
        assert end["reason"] == "complete"
        text = "".join(
            part.get("delta", "")
            for item in seen
            if item["type"] == "output"
            for part in item["payload"]
        )
        assert text == "Hello"
        (start,) = [e for e in seen if e["type"] == "run.start"]
        assert start["input_message_id"] == first["message_id"]
        assert start["run_client_id"] == "alice"

        # By input: sent at once, before the run id is known.
        reply = next(e["message_id"] for e in seen if e["type"] == "output")
        second = await http.post(f"{base}/send", json={"content": "more", "parent": reply})
        by_input = {"input_message_id": second.json()["message_id"]}
        assert (await http.post(f"{base}/cancel", json=by_input)).status_code == 200
        assert (await _until_end(stream, seen))["reason"] == "cancelled"

        # By run id: once the run.start is on the stream.
        third = (await http.post(f"{base}/send", json={"content": "again"})).json()
        with anyio.fail_after(20):
            while not any(
                e["type"] == "run.start" and e["input_message_id"] == third["message_id"]
                for e in seen
            ):
                item = await anext(stream.extensions["ait-sse"])
                if item.comment is None:
                    seen.append(json.loads(item.data[0])["event"])
        run_id = seen[-1]["run_id"]
        cancelled = await http.post(f"{base}/cancel", json={"run_id": run_id})
        assert cancelled.json()["run_id"] == run_id
        end = await _until_end(stream, seen)
        assert (end["run_id"], end["reason"]) == (run_id, "cancelled")
