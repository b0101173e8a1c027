"""`ait tail`: a channel's events as they arrive, one line each."""

from __future__ import annotations

import argparse
import json
from typing import Any, cast

from ..codec import encode_event
from ..errors import AitError, ContinuityLost, InvalidName, SubscriberLagged, UsageError
from ..events import BadEntry, Cancel, Event, Input, Output, RunEnd, RunResume, RunStart, RunSuspend
from ._common import Style, fail, open_bus, resolve_redis

__all__ = ["describe", "tail_command"]


def describe(event: Event | BadEntry, style: Style) -> str:
    """One line saying what an event is."""
    if isinstance(event, BadEntry):
        return style.red(f"BAD ENTRY: {event.reason}")
    short = _short
    if isinstance(event, Input):
        what = f"{event.role} message {short(event.message_id)} from {event.client_id}"
        if event.regenerate:
            what = f"regenerate {short(event.regenerate)} from {event.client_id}"
        elif event.run_id:
            what = f"answer to run {short(event.run_id)} from {event.client_id}"
        elif event.fork_of:
            what += f" (edit of {short(event.fork_of)})"
        return f"{what}: {_text(event.payload)!r}" if _text(event.payload) else what
    if isinstance(event, Output):
        summary = _summary(event.payload)
        return f"run {short(event.run_id)} message {short(event.message_id)}: {summary}"
    if isinstance(event, RunStart):
        who = event.run_client_id
        return f"run {short(event.run_id)} started for {short(event.input_message_id)} ({who})"
    if isinstance(event, RunResume):
        return f"run {short(event.run_id)} resumed"
    if isinstance(event, RunSuspend):
        return f"run {short(event.run_id)} suspended"
    if isinstance(event, RunEnd):
        if event.reason == "error":
            return style.red(
                f"run {short(event.run_id)} ended: error {event.error_code}: {event.error_message}"
            )
        return f"run {short(event.run_id)} ended: {event.reason}"
    assert isinstance(event, Cancel)
    target = (
        f"run {short(event.run_id)}" if event.run_id
        else f"input {short(event.input_message_id or '')}" if event.input_message_id
        else f"all runs of {event.client_id}" if event.scope == "client" else "all runs"
    )  # fmt: skip
    return f"cancel {target} (from {event.client_id})"


def _short(value: str) -> str:
    return value[:8]


def _items(payload: Any) -> list[dict[str, Any]]:
    items: list[Any] = list(payload) if isinstance(payload, list) else []  # pyright: ignore
    return [cast(dict[str, Any], item) for item in items if isinstance(item, dict)]


def _text(payload: Any) -> str:
    return "".join(
        str(item.get("delta", "")) for item in _items(payload) if item.get("type") == "text-delta"
    )


def _summary(payload: list[Any]) -> str:
    text = _text(payload)
    others = [str(item.get("type")) for item in _items(payload) if item.get("type") != "text-delta"]
    parts = [repr(text)] if text else []
    return ", ".join(parts + others) or "(empty)"


def raw_fields(event: Event | BadEntry) -> dict[str, Any]:
    """The entry's fields: v, t, h (a map) and d, as they are on the stream."""
    if isinstance(event, BadEntry):
        return {
            k.decode(errors="replace"): v.decode(errors="replace") for k, v in event.fields.items()
        }
    fields = encode_event(event)
    decoded = event.model_dump(exclude={"payload", "extra_headers", "entry_key"}, exclude_none=True)
    headers = {k.replace("_", "-"): v for k, v in decoded.items() if k != "type"}
    headers.update(event.extra_headers)
    out: dict[str, Any] = {"v": fields[1].decode(), "t": event.type, "h": headers}
    if event.payload is not None:
        out["d"] = event.payload
    if event.entry_key is not None:
        out["k"] = event.entry_key
    return out


async def tail_command(args: argparse.Namespace) -> int:
    style = Style()
    bus = await open_bus(resolve_redis(args.redis))
    seen = 0
    # Recent resend keys: an entry with one of them is a writer's copy of an earlier one.
    keys: dict[str, None] = {}
    try:
        try:
            channel = bus.channel(args.channel)
            subscription = channel.subscribe(after=args.start, strict=False)
        except (InvalidName, UsageError) as exc:
            fail(str(exc), 2)
        async with subscription:
            while args.count is None or seen < args.count:
                try:
                    async for entry_id, event in subscription:
                        seen += 1
                        if args.raw:
                            line = json.dumps(raw_fields(event), default=str)
                            style.out(f"{entry_id} {line}")
                        else:
                            kind = "bad" if isinstance(event, BadEntry) else event.type
                            label = style.bold(f"{kind:<11}")
                            line = f"{style.dim(entry_id)} {label} {describe(event, style)}"
                            key = getattr(event, "entry_key", None)
                            if key is not None and key in keys:
                                line += style.dim(" (resent: readers fold it once)")
                            elif key is not None:
                                keys[key] = None
                                if len(keys) > 10_000:  # copies follow within an outage
                                    del keys[next(iter(keys))]
                            style.out(line)
                        if args.count is not None and seen >= args.count:
                            break
                    else:
                        break
                except SubscriberLagged:
                    continue
                except ContinuityLost as exc:
                    style.out(style.red(f"! {exc}"))
    except AitError as exc:
        fail(str(exc))
    finally:
        await bus.aclose()
    return 0
