"""Bus construction and lifecycle: clear errors for every misuse."""

from __future__ import annotations

import pytest

import ait


@pytest.mark.parametrize("url", ["localhost:6379", "", "redis//x"])
def test_malformed_urls_are_refused_at_once(url: str) -> None:
    with pytest.raises(ait.UsageError, match="invalid Redis URL"):
        ait.Bus.from_url(url)


async def test_unknown_scheme_is_a_bus_error() -> None:
    bus = ait.Bus.from_url("http://localhost:1/0")
    with pytest.raises(ait.BusError, match="invalid Redis URL"):
        await bus.__aenter__()
    assert bus.state == "closed"


async def test_unreachable_tcp_redis_is_a_connection_error() -> None:
    bus = ait.Bus.from_url("redis://127.0.0.1:1/0", connect_timeout=1)
    with pytest.raises(ait.BusConnectionError, match="unable to connect to Redis at redis://"):
        await bus.__aenter__()


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(ait.UsageError):
        ait.Bus.from_url("redis://x", prefix="")
    with pytest.raises(ait.UsageError):
        ait.Bus.from_url("redis://x", prefix="a{b}")
    with pytest.raises(ait.UsageError):
        ait.Bus.from_url("redis://x", max_entry_bytes=10)
    with pytest.raises(ait.UsageError):
        ait.Bus()


async def test_a_bus_opens_once_and_closes_idempotently(redis_url: str) -> None:
    bus = ait.Bus.from_url(redis_url)
    assert bus.state == "unopened"
    async with bus:
        assert bus.state == "open"
        assert bus.cluster is False
        with pytest.raises(ait.UsageError, match="unable to open the bus; it is open"):
            await bus.__aenter__()
    assert bus.state == "closed"
    await bus.aclose()
    with pytest.raises(ait.UsageError, match="closed"):
        await bus.__aenter__()


async def test_custom_prefix_keys_and_hash_tag(redis_url: str, channel_name: str) -> None:
    async with ait.Bus.from_url(redis_url, prefix="myapp:") as bus:
        channel = bus.channel(channel_name)
        assert channel.key == f"myapp:{{{channel_name}}}:events"
        await channel.publish(ait.Cancel(event_id="e", client_id="c", scope="all"))
        assert await bus.handle.client.exists(channel.key) == 1


async def test_on_error_that_raises_does_not_break_the_bus(redis_url: str) -> None:
    def broken(error: BaseException) -> None:
        raise RuntimeError("callback bug")

    async with ait.Bus.from_url(redis_url, on_error=broken) as bus:
        bus.report(ait.BusError("something"))  # logged, not raised
