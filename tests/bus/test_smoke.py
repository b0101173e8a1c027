import ait


async def test_publish_then_read(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    event = ait.Cancel(event_id="e1", client_id="alice", scope="all")
    entry_id = await channel.publish(event)
    assert await channel.read() == [(entry_id, event)]
