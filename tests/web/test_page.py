"""The chat page: served at `/` when asked for (and by `ait serve`), its scripts as
JavaScript; `ait serve --model` answers a message sent over the HTTP routes."""

from __future__ import annotations

import time

import httpx

import ait
from ait.testing import EmbeddedRedis

from ..cli.test_cli import spawned
from .helpers import asgi_client, bridge, free_port


async def test_the_page_and_its_scripts_are_served_with_their_types(bus: ait.Bus) -> None:
    async with asgi_client(bridge(bus, page=True).app) as http:
        page = await http.get("/")
        names = ("chat.js", "chat-rows.js", "ait.js")
        scripts = {name: await http.get(f"/static/{name}") for name in names}
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'src="static/chat.js"' in page.text
    for name, reply in scripts.items():
        assert reply.status_code == 200, name
        assert "javascript" in reply.headers["content-type"], (name, reply.headers["content-type"])
    assert 'from "./ait.js"' in scripts["chat.js"].text


async def test_a_mounted_bridge_has_no_page_unless_asked(bus: ait.Bus) -> None:
    async with asgi_client(bridge(bus).app) as http:
        reply = await http.get("/")
    assert reply.status_code == 404 and reply.json()["error"]["type"] == "NotFound"


def test_ait_serve_with_a_model_answers_over_http(
    redis_server: EmbeddedRedis, channel_name: str
) -> None:
    port = free_port()
    model = "scripted:Hello from the page."
    with spawned(
        "serve", "--redis", redis_server.url, "--port", str(port), "--pool", f"p-{channel_name}",
        "--model", model,
    ) as process:  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"{base}/", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "ait serve did not start"
                time.sleep(0.1)
        assert page.status_code == 200 and "chat.js" in page.text
        sent = httpx.post(f"{base}/channels/{channel_name}/send", json={"content": "hi"})
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 30
        while True:
            events = httpx.get(f"{base}/channels/{channel_name}/history").json()["events"]
            ends = [e["event"] for e in events if e["event"]["type"] == "run.end"]
            if ends:
                break
            assert time.monotonic() < deadline, f"no answer: {events}"
            time.sleep(0.1)
    assert ends[0]["reason"] == "complete"
    text = "".join(
        part.get("delta", "")
        for e in events
        if e["event"]["type"] == "output"
        for part in e["event"]["payload"]
        if part.get("type") == "text-delta"
    )
    assert text == "Hello from the page."
