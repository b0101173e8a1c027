"""The bridge's JSON writes and refusals, through httpx's ASGI transport on a real Redis."""

from __future__ import annotations

import pytest

import ait
from ait.events import Cancel, Input
from ait.web import Bridge

from .helpers import asgi_client, bridge


async def _entries(bus: ait.Bus, channel: str) -> list[ait.Entry]:
    return await bus.channel(channel).read(after="0-0", count=1000)


async def test_send_publishes_an_input_as_the_user_and_queues_it(
    bus: ait.Bus, channel_name: str
) -> None:
    pool = f"pool-{channel_name}"
    async with asgi_client(bridge(bus, pool=pool).app) as http:
        reply = await http.post(f"/channels/{channel_name}/send", json={"content": "hi"})
    assert reply.status_code == 200, reply.text
    ids = reply.json()
    ((entry_id, event),) = await _entries(bus, channel_name)
    assert isinstance(event, Input)
    assert ids == {
        "entry_id": entry_id,
        "event_id": event.event_id,
        "message_id": event.message_id,
        "run_id": None,
    }
    assert event.client_id == "alice" and event.parent is None
    assert event.payload == ait.ChatCodec.user_text("hi")
    queued = await bus.handle.client.execute_command("XLEN", bus.pool(pool).key)
    assert queued == 1


async def test_edit_regenerate_answers_and_cancel_place_their_events(
    bus: ait.Bus, channel_name: str
) -> None:
    base = f"/channels/{channel_name}"
    async with asgi_client(bridge(bus).app, user="bob") as http:
        first = (await http.post(f"{base}/send", json={"content": "hi"})).json()
        edit = await http.post(
            f"{base}/edit", json={"message_id": first["message_id"], "content": "hello"}
        )
        regen = await http.post(
            f"{base}/regenerate",
            json={"message_id": "m-answer", "parent": first["message_id"], "multitask": "enqueue"},
        )
        tool = await http.post(
            f"{base}/tool-result",
            json={"run_id": "r1", "message_id": "m-answer", "call_id": "c1", "output": {"ok": 1}},
        )
        approval = await http.post(
            f"{base}/approval",
            json={"run_id": "r1", "message_id": "m-answer", "call_id": "c2", "approved": False},
        )
        cancel = await http.post(f"{base}/cancel", json={"run_id": "r1"})
    for reply in (edit, regen, tool, approval, cancel):
        assert reply.status_code == 200, reply.text
    events = [event for _, event in await _entries(bus, channel_name)]
    _, edited, regenerated, answer, approved, cancelled = events
    assert isinstance(edited, Input) and edited.fork_of == first["message_id"]
    assert edited.message_id == edit.json()["message_id"]
    assert isinstance(regenerated, Input) and regenerated.regenerate == "m-answer"
    assert regenerated.parent == first["message_id"] and regenerated.multitask == "enqueue"
    assert isinstance(answer, Input) and answer.run_id == "r1" and answer.role == "tool"
    assert answer.payload == ait.ChatCodec.tool_result("c1", {"ok": 1})
    assert tool.json()["run_id"] == "r1"
    assert isinstance(approved, Input)
    assert approved.payload == ait.ChatCodec.approval("c2", False, None)
    assert isinstance(cancelled, Cancel) and cancelled.run_id == "r1"
    assert cancelled.client_id == "bob"
    assert cancel.json()["event_id"] == cancelled.event_id
    assert {e.client_id for e in events if isinstance(e, Input | Cancel)} == {"bob"}


@pytest.mark.parametrize(
    ("user", "path", "body", "status", "kind"),
    [
        (None, "send", {"content": "hi"}, 401, "AuthenticationError"),
        ("alice", "send", b"{not json", 400, "UsageError"),
        ("alice", "send", {"content": "hi", "client_id": "mallory"}, 422, "UsageError"),
        ("alice", "send", {"text": "hi"}, 422, "UsageError"),
        ("alice", "send", {"content": "x" * 300_000}, 413, "EntryTooLarge"),
        ("alice", "cancel", {}, 422, "UsageError"),
        ("alice", "cancel", {"run_id": "r", "scope": "client"}, 422, "UsageError"),
        ("alice", "approval", {"call_id": "c"}, 422, "UsageError"),
    ],
)
async def test_bad_writes_are_refused_in_json_and_write_nothing(
    bus: ait.Bus,
    channel_name: str,
    user: str | None,
    path: str,
    body: object,
    status: int,
    kind: str,
) -> None:
    async with asgi_client(bridge(bus).app, user=user) as http:
        url = f"/channels/{channel_name}/{path}"
        if isinstance(body, bytes):
            reply = await http.post(url, content=body)
        else:
            reply = await http.post(url, json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["type"] == kind
    assert reply.json()["error"]["message"]
    assert await _entries(bus, channel_name) == []


async def test_an_entry_over_the_bus_limit_is_413(redis_url: str, channel_name: str) -> None:
    async with ait.Bus.from_url(redis_url, max_entry_bytes=2_000) as small:
        async with asgi_client(bridge(small).app) as http:
            reply = await http.post(f"/channels/{channel_name}/send", json={"content": "y" * 5_000})
        assert reply.status_code == 413
        assert reply.json()["error"]["type"] == "EntryTooLarge"
        assert await _entries(small, channel_name) == []


async def test_channels_and_cursors_are_checked_on_every_route(
    bus: ait.Bus, channel_name: str
) -> None:
    async with asgi_client(bridge(bus).app) as http:
        denied = await http.post("/channels/private-bob-1/send", json={"content": "hi"})
        denied_read = await http.get("/channels/private-bob-1/history")
        invalid = await http.get("/channels/no{braces}/history")
        bad_cursor = await http.get(
            f"/channels/{channel_name}/events", headers={"last-event-id": "yesterday"}
        )
        bad_combined = await http.get(
            "/events", params={"channel": channel_name, "after": "other@1-0"}
        )
        bad_before = await http.get(f"/channels/{channel_name}/history", params={"before": "x"})
        no_route = await http.get("/keys/ait:{x}:events")
        denied_many = await http.get(
            "/events", params=[("channel", channel_name), ("channel", "private-bob-1")]
        )
    assert (denied.status_code, denied.json()["error"]["type"]) == (403, "PermissionDeniedError")
    assert denied_read.status_code == 403
    assert (invalid.status_code, invalid.json()["error"]["type"]) == (404, "InvalidName")
    assert (bad_cursor.status_code, bad_cursor.json()["error"]["type"]) == (400, "UsageError")
    assert bad_combined.status_code == 400 and bad_before.status_code == 400
    assert no_route.status_code == 404 and "error" in no_route.json()
    assert denied_many.status_code == 403
    assert await _entries(bus, "private-bob-1") == []


async def test_nothing_is_allowed_without_hooks(bus: ait.Bus, channel_name: str) -> None:
    app = Bridge(bus).app
    async with asgi_client(app) as http:
        reply = await http.post(f"/channels/{channel_name}/send", json={"content": "hi"})
    assert reply.status_code == 401
    authenticated_only = Bridge(bus, authenticate=lambda request: "alice").app
    async with asgi_client(authenticated_only) as http:
        reply = await http.post(f"/channels/{channel_name}/send", json={"content": "hi"})
    assert reply.status_code == 403
    assert await _entries(bus, channel_name) == []


async def test_own_bus_opens_and_closes_with_the_app_lifespan(
    redis_url: str, channel_name: str
) -> None:
    bus = ait.Bus.from_url(redis_url)
    app = bridge(bus, own_bus=True).app
    async with app.router.lifespan_context(app):
        assert bus.state == "open"
        async with asgi_client(app) as http:
            reply = await http.post(f"/channels/{channel_name}/send", json={"content": "hi"})
        assert reply.status_code == 200
    assert bus.state == "closed"
