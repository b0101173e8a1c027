"""History pages by messages, and the whole channel for a first render."""

from __future__ import annotations

import ait
from ait.events import Output
from ait.ids import new_id

from ..providers.helpers import publish_user
from .helpers import asgi_client, bridge


async def _exchange(bus: ait.Bus, channel: str, parent: str | None, text: str) -> str:
    """One user message and its answer (an output entry); returns the answer's id."""
    asked = await publish_user(bus.channel(channel), text, parent=parent)
    answer = new_id()
    await bus.channel(channel).publish(
        Output(run_id="r-" + answer, message_id=answer, role="assistant", parent=asked.message_id)
    )
    return answer


def _messages(page: dict) -> list[str]:
    seen: list[str] = []
    for item in page["events"]:
        mid = item["event"].get("message_id")
        if mid is not None and mid not in seen:
            seen.append(mid)
    return seen


async def test_pages_of_messages_backward_then_follow_from_the_cursor(
    bus: ait.Bus, channel_name: str
) -> None:
    parent = None
    for i in range(3):  # six messages: three questions, three answers
        parent = await _exchange(bus, channel_name, parent, f"q{i}")
    everything = await bus.channel(channel_name).read(after="0-0", count=100)
    path = f"/channels/{channel_name}/history"
    async with asgi_client(bridge(bus).app) as http:
        newest = (await http.get(path, params={"limit": 4})).json()
        older = (await http.get(path, params={"limit": 4, "before": newest["before"]})).json()
        whole = (await http.get(path, params={"limit": "all"})).json()
        bad = await http.get(path, params={"limit": "0"})
    assert len(_messages(newest)) == 4 and newest["before"] == everything[2][0]
    assert newest["cursor"] == everything[-1][0]  # follow with ?after=<cursor>
    assert len(_messages(older)) == 2 and older["before"] is None
    pages = [e["id"] for e in older["events"]] + [e["id"] for e in newest["events"]]
    assert pages == [entry_id for entry_id, _ in everything]  # no gap, no overlap
    assert [e["id"] for e in whole["events"]] == pages and whole["before"] is None
    assert whole["events"][1]["event"] == {
        "type": "output",
        "run_id": everything[1][1].run_id,  # type: ignore[union-attr]
        "message_id": everything[1][1].message_id,  # type: ignore[union-attr]
        "role": "assistant",
        "parent": whole["events"][0]["event"]["message_id"],
        "payload": [],
    }
    assert bad.status_code == 400


async def test_an_empty_channel_has_an_empty_history(bus: ait.Bus, channel_name: str) -> None:
    async with asgi_client(bridge(bus).app) as http:
        page = (await http.get(f"/channels/{channel_name}/history")).json()
    assert page == {"channel": channel_name, "events": [], "before": None, "cursor": "0-0"}
