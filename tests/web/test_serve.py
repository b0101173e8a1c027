"""`ait serve`: the bridge under uvicorn, as a user starts it, with the local-only user."""

from __future__ import annotations

import time

import httpx

from ait.events import Input
from ait.testing import EmbeddedRedis

from ..cli.test_cli import spawned
from .helpers import free_port


def test_ait_serve_acts_as_the_local_user(redis_server: EmbeddedRedis, channel_name: str) -> None:
    port = free_port()
    with spawned(
        "serve", "--redis", redis_server.url, "--port", str(port), "--user", "tester"
    ) as process:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/static/README.md", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "ait serve did not start"
                time.sleep(0.1)
        sent = httpx.post(f"{base}/channels/{channel_name}/send", json={"content": "hi"})
        assert sent.status_code == 200, sent.text
        page = httpx.get(f"{base}/channels/{channel_name}/history").json()
        static = httpx.get(f"{base}/static/README.md")
    (item,) = page["events"]
    event = Input.model_validate(item["event"])
    assert event.client_id == "tester" and event.message_id == sent.json()["message_id"]
    assert static.status_code == 200 and "ait.js" in static.text
