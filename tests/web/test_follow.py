"""Following a channel over SSE through a real uvicorn server: ids, resume, heartbeats,
reset, slow clients, several channels, a server restart."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

import ait

from ..providers.helpers import publish_user
from .helpers import bridge, free_port, serving, sse_events, take


async def _publish(bus: ait.Bus, channel: str, *texts: str) -> list[str]:
    entries = []
    for text in texts:
        await publish_user(bus.channel(channel), text)
        entries.append(await bus.channel(channel).last_id())
    return entries


async def test_ids_are_entry_ids_and_last_event_id_resumes_exactly(
    bus: ait.Bus, channel_name: str
) -> None:
    ids = await _publish(bus, channel_name, "one", "two", "three")
    headers = {"x-user": "alice"}
    async with serving(bridge(bus).app) as url, httpx.AsyncClient(base_url=url) as http:
        path = f"/channels/{channel_name}/events"
        async with http.stream("GET", path, params={"after": "0-0"}, headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            first = await take(r, 2)
        assert [e.id for e in first] == ids[:2]
        data = json.loads(first[0].data[0])
        assert data["channel"] == channel_name and data["id"] == ids[0]
        assert data["event"]["type"] == "input" and data["event"]["client_id"] == "alice"
        assert "extra_headers" not in data["event"]  # none here: left out

        later = await _publish(bus, channel_name, "four")
        resume = {**headers, "last-event-id": first[-1].id or ""}
        async with http.stream("GET", path, headers=resume) as r:
            again = await take(r, 2)
        assert [e.id for e in again] == [ids[2], later[0]]  # no gap, no duplicate


async def test_heartbeats_while_idle(bus: ait.Bus, channel_name: str) -> None:
    app = bridge(bus, heartbeat=0.2).app
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        path = f"/channels/{channel_name}/events"
        async with http.stream("GET", path, headers={"x-user": "alice"}) as r:
            beats = await take(r, 2, comments=True)
    assert [b.comment for b in beats] == ["heartbeat", "heartbeat"]


async def test_a_lost_cursor_sends_reset_then_follows_from_the_oldest(
    bus: ait.Bus, channel_name: str
) -> None:
    ids = await _publish(bus, channel_name, "one", "two")
    channel = bus.channel(channel_name)
    await bus.handle.client.execute_command("XTRIM", channel.key, "MAXLEN", 0)
    kept = await _publish(bus, channel_name, "three")
    async with serving(bridge(bus).app) as url, httpx.AsyncClient(base_url=url) as http:
        headers = {"x-user": "alice", "last-event-id": ids[0]}
        async with http.stream("GET", f"/channels/{channel_name}/events", headers=headers) as r:
            reset, event = await take(r, 2)
    assert reset.event == "reset" and reset.id == "0-0"
    assert json.loads(reset.data[0])["channel"] == channel_name
    assert event.event is None and event.id == kept[0]


async def test_a_slow_client_is_disconnected_and_resumes_from_its_cursor(
    bus: ait.Bus, channel_name: str
) -> None:
    app = bridge(bus, buffer=4).app
    big = "x" * 60_000
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        path = f"/channels/{channel_name}/events"
        async with http.stream("GET", path, headers={"x-user": "alice"}) as r:
            await anyio.sleep(0.2)  # subscribed (the stream is open): now do not read
            ids = await _publish(bus, channel_name, *[big] * 300)
            await anyio.sleep(1.0)
            seen = []
            with anyio.fail_after(20):
                async for event in sse_events(r):  # ends: the server dropped us
                    seen.append(event.id)
        assert seen and len(seen) < len(ids), "a client that did not read was not dropped"
        assert seen == ids[: len(seen)]
        headers = {"x-user": "alice", "last-event-id": seen[-1]}
        async with http.stream("GET", path, headers=headers) as r:
            (next_event,) = await take(r, 1)
        assert next_event.id == ids[len(seen)]


async def test_several_channels_on_one_connection_with_a_combined_cursor(
    bus: ait.Bus, channel_name: str
) -> None:
    a, b = f"{channel_name}-a", f"{channel_name}-b"
    a_ids = await _publish(bus, a, "a1")
    async with serving(bridge(bus).app) as url, httpx.AsyncClient(base_url=url) as http:
        params = [("channel", a), ("channel", b), ("after", f"{a}@0-0")]
        async with http.stream("GET", "/events", params=params, headers={"x-user": "al"}) as r:
            (first,) = await take(r, 1)
            assert first.id is not None and first.id.startswith(f"{a}@{a_ids[0]},{b}@")
            b_ids = await _publish(bus, b, "b1")
            (second,) = await take(r, 1)
        assert second.id == f"{a}@{a_ids[0]},{b}@{b_ids[0]}"
        assert json.loads(second.data[0])["channel"] == b
        more = await _publish(bus, a, "a2")
        headers = {"x-user": "al", "last-event-id": second.id}
        async with http.stream("GET", "/events", params=params[:2], headers=headers) as r:
            (third,) = await take(r, 1)
        assert third.id == f"{a}@{more[0]},{b}@{b_ids[0]}"


async def test_reconnect_across_a_server_restart(bus: ait.Bus, channel_name: str) -> None:
    port = free_port()
    ids = await _publish(bus, channel_name, "before")
    path = f"/channels/{channel_name}/events"
    headers = {"x-user": "alice"}
    async with httpx.AsyncClient(timeout=10) as http:
        async with serving(bridge(bus).app, port) as url:
            async with http.stream(
                "GET", url + path, params={"after": "0-0"}, headers=headers
            ) as r:
                (seen,) = await take(r, 1)
        # the server is gone; something is published meanwhile
        during = await _publish(bus, channel_name, "during")
        async with serving(bridge(bus).app, port) as url:
            resume = {**headers, "last-event-id": seen.id or ""}
            async with http.stream("GET", url + path, headers=resume) as r:
                (got,) = await take(r, 1)
    assert seen.id == ids[0] and got.id == during[0]


@pytest.mark.parametrize("after", [None, "0-0"])  # refused on joining; while reading
async def test_a_channel_redis_refuses_ends_the_stream_with_an_error_event(
    bus: ait.Bus, channel_name: str, after: str | None
) -> None:
    await bus.handle.client.execute_command("SET", bus.channel(channel_name).key, "not a stream")
    async with serving(bridge(bus).app) as url, httpx.AsyncClient(base_url=url) as http:
        path = f"/channels/{channel_name}/events"
        params = {"after": after} if after else {}
        async with http.stream("GET", path, params=params, headers={"x-user": "alice"}) as r:
            with anyio.fail_after(10):
                events = [e async for e in sse_events(r) if e.comment is None]
    (error,) = events  # and then the stream ended
    assert error.event == "error"
    body = json.loads(error.data[0])
    assert body["channel"] == channel_name and body["error"]["type"] == "BusError"


async def test_a_reset_in_a_combined_cursor_names_its_channel_at_0_0(
    bus: ait.Bus, channel_name: str
) -> None:
    a, b = f"{channel_name}-a", f"{channel_name}-b"
    gone = await _publish(bus, a, "a1")
    await bus.handle.client.execute_command("XTRIM", bus.channel(a).key, "MAXLEN", 0)
    b_ids = await _publish(bus, b, "b1")
    async with serving(bridge(bus).app) as url, httpx.AsyncClient(base_url=url) as http:
        params = [("channel", a), ("channel", b)]
        headers = {"x-user": "al", "last-event-id": f"{a}@{gone[0]},{b}@0-0"}
        async with http.stream("GET", "/events", params=params, headers=headers) as r:
            got = await take(r, 2)
    reset = next(e for e in got if e.event == "reset")
    assert json.loads(reset.data[0])["channel"] == a
    assert reset.id is not None and reset.id.startswith(f"{a}@0-0,")
    (event,) = [e for e in got if e.event is None]
    assert event.id is not None and event.id.endswith(f"{b}@{b_ids[0]}")
