"""Publishing and reading a channel: functional tests on real Redis and the memory bus."""

from __future__ import annotations

import pytest

import ait
from ait.ids import entry_id_key

from .helpers import delta, inp


async def test_publish_returns_increasing_ids_and_read_returns_events(
    any_bus: ait.Bus, channel_name: str
) -> None:
    channel = any_bus.channel(channel_name)
    ids = [await channel.publish(inp(i)) for i in range(3)]
    assert sorted(ids, key=entry_id_key) == ids
    assert await channel.read() == [(ids[i], inp(i)) for i in range(3)]


async def test_publish_many_keeps_order_in_one_call(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    events = [inp(i) for i in range(50)]
    ids = await channel.publish_many(events)
    assert len(ids) == 50 and len(set(ids)) == 50
    got = await channel.read(count=100)
    assert [event for _, event in got] == events
    assert [entry_id for entry_id, _ in got] == ids
    assert await channel.publish_many([]) == []


async def test_read_after_is_exclusive_and_counts(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    ids = await channel.publish_many([inp(i) for i in range(10)])
    page = await channel.read(after=ids[3], count=4)
    assert [entry_id for entry_id, _ in page] == ids[4:8]
    assert await channel.read(after=ids[-1]) == []


async def test_history_pages_backward_oldest_first(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    ids = await channel.publish_many([inp(i) for i in range(25)])
    seen: list[str] = []
    before: str | None = None
    pages = 0
    while True:
        page = await channel.history(before=before, limit=10)
        pages += 1
        seen[:0] = [entry_id for entry_id, _ in page]
        if len(page) < 10:
            break
        before = page[0][0]
    assert seen == ids
    assert pages == 3


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
async def test_scan_leaves_out_the_skipped_types_and_gives_the_cursor(
    any_bus: ait.Bus, channel_name: str, reverse: bool
) -> None:
    """Pages of 4 over inputs among outputs: the outputs are left out, the cursor is the
    last entry read even when it was left out, and paging by it misses nothing."""
    channel = any_bus.channel(channel_name)
    ids = await channel.publish_many([inp(i) if i % 3 == 0 else delta(i) for i in range(12)])
    order = list(reversed(ids)) if reverse else ids
    kept: list[ait.Entry] = []
    cursors: list[str | None] = []
    start, end = "-", "+"
    while True:
        page, last = await channel.scan(start, end, 4, skip=["output"], reverse=reverse)
        kept += page
        cursors.append(last)
        if last is None:
            break
        if reverse:
            end = f"({last}"
        else:
            start = f"({last}"
    assert cursors == [order[3], order[7], order[11], None]  # skipped or not, the last read
    wanted = [i for i in range(12) if i % 3 == 0]
    assert kept == [(ids[i], inp(i)) for i in (reversed(wanted) if reverse else wanted)]


async def test_scan_skips_by_type_only_what_it_can_classify(
    any_bus: ait.Bus, channel_name: str
) -> None:
    """An entry in ait's layout is skipped by its `t` alone (a malformed output too: the
    reader asked not to see outputs). One in another field order is decoded, never
    skipped unseen; one that does not decode is kept as a BadEntry."""
    channel = any_bus.channel(channel_name)
    client = any_bus.handle.client

    async def xadd(*fields: bytes) -> str:
        return (await client.execute_command("XADD", channel.key, "*", *fields)).decode()

    fields = channel.encode(delta(1))
    junk = await xadd(b"v", b"1", b"t", b"output", b"h", b"\xc1")
    other = await xadd(*fields[2:4], *fields[0:2], *fields[4:])  # t, v, h, d
    page, last = await channel.scan("-", "+", 10, skip=["output"])
    assert last == other
    assert page == [(other, delta(1))]
    page, _ = await channel.scan("-", "+", 10, skip=["input"])
    assert [(entry_id, type(event).__name__) for entry_id, event in page] == [
        (junk, "BadEntry"),
        (other, "Output"),
    ]


async def test_last_id_and_length(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    assert await channel.last_id() is None
    assert await channel.length() == 0
    ids = await channel.publish_many([inp(0), inp(1)])
    assert await channel.last_id() == ids[-1]
    assert await channel.length() == 2


@pytest.mark.parametrize(
    "name", ["", "a b", "x{y}", "a" * 201, "ünï", "new\nline", "tab\t"], ids=repr
)
async def test_bad_channel_names_refused_before_redis(any_bus: ait.Bus, name: str) -> None:
    with pytest.raises(ait.InvalidName) as info:
        any_bus.channel(name)
    assert "channel name" in str(info.value)


async def test_longest_allowed_name_works(any_bus: ait.Bus) -> None:
    channel = any_bus.channel("a:b.c_d-" + "x" * 192)
    entry_id = await channel.publish(inp(1))
    assert (await channel.read())[0][0] == entry_id


async def test_oversized_entry_refused_and_nothing_written(
    redis_url: str, channel_name: str
) -> None:
    async with ait.Bus.from_url(redis_url, max_entry_bytes=4096) as bus:
        channel = bus.channel(channel_name)
        big = ait.Output(
            run_id="r", message_id="m", role="assistant", parent="p", payload=["x" * 5000]
        )
        with pytest.raises(ait.EntryTooLarge) as info:
            await channel.publish(big)
        assert info.value.limit == 4096 and info.value.size > 5000
        with pytest.raises(ait.EntryTooLarge):
            await channel.publish_many([inp(1), big])
        assert await channel.length() == 0
        await channel.publish(inp(2))
        assert await channel.length() == 1


async def test_unencodable_payload_is_a_codec_error(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    bad = ait.Input(event_id="e", message_id="m", role="user", client_id="c", payload={1j})
    with pytest.raises(ait.CodecError):
        await channel.publish(bad)
    assert await channel.length() == 0


async def test_retention_max_entries_trims_approximately(redis_url: str, channel_name: str) -> None:
    retention = ait.Retention(max_entries=100)
    async with ait.Bus.from_url(redis_url, retention=retention) as bus:
        channel = bus.channel(channel_name)
        for start in range(0, 2000, 100):
            await channel.publish_many([delta(i) for i in range(start, start + 100)])
        length = await channel.length()
        # Approximate trimming works on whole radix-tree nodes (100 entries by default).
        assert 100 <= length < 400
        newest = (await channel.history(limit=1))[0][1]
        assert isinstance(newest, ait.Output) and newest.payload == [{"i": 1999}]


async def test_retention_by_age_and_per_channel_override(redis_url: str, channel_name: str) -> None:
    async with ait.Bus.from_url(redis_url) as bus:
        kept = bus.channel(channel_name)
        assert kept.retention is None
        trimmed = bus.channel(channel_name + "-t", retention=ait.Retention(max_age=0.001))
        await trimmed.publish_many([delta(i) for i in range(300)])
        await kept.publish_many([delta(i) for i in range(300)])
        await _sleep(0.01)
        await trimmed.publish(delta(300))
        assert await kept.length() == 300
        assert await trimmed.length() < 300


def test_retention_needs_exactly_one_rule() -> None:
    with pytest.raises(ait.UsageError):
        ait.Retention()
    with pytest.raises(ait.UsageError):
        ait.Retention(max_entries=10, max_age=1.0)
    with pytest.raises(ait.UsageError):
        ait.Retention(max_entries=0)


async def test_bad_cursor_arguments_are_usage_errors(any_bus: ait.Bus, channel_name: str) -> None:
    channel = any_bus.channel(channel_name)
    with pytest.raises(ait.UsageError):
        await channel.read(after="yesterday")
    with pytest.raises(ait.UsageError):
        await channel.read(count=0)
    with pytest.raises(ait.UsageError):
        await channel.history(before="1-x")
    with pytest.raises(ait.UsageError):
        channel.subscribe(after="latest")


async def _sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


# Ids of the right shape that Redis cannot hold: a part above 2**64-1 (20 digits fit).
BEYOND_64_BITS = ["99999999999999999999-0", f"{2**64}-0", f"0-{2**64}"]


@pytest.mark.parametrize("entry_id", BEYOND_64_BITS)
async def test_ids_beyond_64_bits_are_refused_before_redis(
    any_bus: ait.Bus, channel_name: str, entry_id: str
) -> None:
    channel = any_bus.channel(channel_name)
    await channel.publish(inp(0))
    with pytest.raises(ait.UsageError, match="2\\*\\*64-1"):
        await channel.read(after=entry_id)
    with pytest.raises(ait.UsageError, match="2\\*\\*64-1"):
        await channel.history(before=entry_id)
    with pytest.raises(ait.UsageError, match="2\\*\\*64-1"):
        channel.subscribe(after=entry_id)
    with pytest.raises(ait.UsageError, match="2\\*\\*64-1"):
        channel.subscribe(after=entry_id, strict=False)
    for start, end in [(entry_id, "+"), (f"({entry_id}", "+"), ("-", entry_id)]:
        with pytest.raises(ait.UsageError, match="2\\*\\*64-1"):
            await channel.scan(start, end, 10, skip=())
        with pytest.raises(ait.UsageError, match="2\\*\\*64-1"):
            await channel.range(start, end, 10)


async def test_cursors_at_the_ends_of_the_id_space_read_nothing(
    any_bus: ait.Bus, channel_name: str
) -> None:
    """Redis refuses an exclusive bound past either end ('invalid start ID'); nothing lies
    there, so ait answers with nothing."""
    channel = any_bus.channel(channel_name)
    await channel.publish(inp(0))
    top = f"{2**64 - 1}-{2**64 - 1}"
    assert await channel.read(after=top) == []
    assert await channel.history(before="0-0") == []
    assert await channel.scan(f"({top}", "+", 10, skip=()) == ([], None)
    assert await channel.scan("-", "(0-0", 10, skip=(), reverse=True) == ([], None)
    assert len(await channel.history(before="0-0", inclusive=True)) == 0
    assert len(await channel.read(after=f"{2**64 - 1}-0")) == 0


class _MyInput(ait.Input):
    """Not one of the protocol's event classes: the codec does not know its type."""


NOT_EVENTS = [
    {"type": "input"},
    "input",
    None,
    ait.BadEntry(entry_id="1-0", reason="broken"),
    ait.Invocation(channel="c", input_event_id="e1"),
    _MyInput(event_id="e", message_id="m", role="user", client_id="c"),
]


@pytest.mark.parametrize("thing", NOT_EVENTS, ids=lambda thing: type(thing).__name__)
async def test_publishing_what_is_not_an_event_is_a_usage_error(
    any_bus: ait.Bus, channel_name: str, thing: object
) -> None:
    channel = any_bus.channel(channel_name)
    name = f"unable to write {type(thing).__name__}: "
    with pytest.raises(ait.UsageError, match=name):
        await channel.publish(thing)  # type: ignore[arg-type]
    with pytest.raises(ait.UsageError, match=name):
        await channel.publish_many([inp(1), thing])  # type: ignore[list-item]
    with pytest.raises(ait.UsageError, match=name):
        ait.codec.encode_event(thing)  # type: ignore[arg-type]
    async with channel.writer() as out:
        with pytest.raises(ait.UsageError, match=name):
            out.send(thing)  # type: ignore[arg-type]
        out.send(inp(2))  # refused at once, the writer goes on
    assert [event for _, event in await channel.read()] == [inp(2)]
