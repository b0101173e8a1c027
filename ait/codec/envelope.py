"""The stream entry envelope: `v` (version), `t` (type), `h` (msgpack headers), `d` (payload),
and `k` (a resend key) on entries a writer may write twice.

`encode_event` turns an event into the flat field list XADD takes. `decode_entry` turns the
fields Redis returns (a flat `[name, value, ...]` list as hiredis gives it, or a mapping)
back into the event, checking every rule of docs/protocol.md on the way; whatever is wrong
comes out as `CodecError` carrying the entry id, and nothing else ever escapes.

Decoding is on the hot path of every reader (10,000 entries of history, every live delta),
so it checks the rules itself with the tables `ait.events` builds and then creates the
frozen model without running pydantic's validator a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, cast

import msgpack  # pyright: ignore[reportMissingTypeStubs]

from .._constants import PROTOCOL_VERSION
from ..errors import CodecError, UsageError
from ..events import EVENT_TYPES, BadEntry, Event, Invocation, Output

__all__ = [
    "check_event",
    "decode_entry",
    "decode_invocation",
    "decode_or_bad",
    "encode_event",
    "encode_invocation",
    "encode_payload",
    "entry_size",
]

_VERSION = PROTOCOL_VERSION.encode()
_TYPES = {name.encode(): (cls, name) for name, cls in EVENT_TYPES.items()}
_TYPE_BYTES = {cls: name.encode() for name, cls in EVENT_TYPES.items()}
# packb, not a shared Packer: a Packer is not safe to share between threads.
_packb: Callable[[Any], bytes] = msgpack.packb  # pyright: ignore
_unpackb: Callable[[bytes], Any] = msgpack.unpackb  # pyright: ignore
# Payloads may use integer map keys; the encoder accepts them, so the decoder must too.
_unpack_payload: Callable[[bytes], Any] = partial(msgpack.unpackb, strict_map_key=False)  # pyright: ignore
_setattr = object.__setattr__
_ABSENT: Any = object()
# Every entry of one message carries the same `h` bytes: its checked headers are kept, by
# (type, h), so a history of thousands of deltas is checked once per message.
_HEADERS: dict[tuple[str, bytes], dict[str, Any]] = {}
_HEADER_CACHE_SIZE = 1024
_HEADER_CACHE_BYTES = 1024


def encode_event(event: Event) -> list[bytes]:
    """The entry fields of `event`, flat (`[b"v", b"1", b"t", ..., b"h", ...]`), for XADD.

    Raises:
        UsageError: `event` is not an event (one of the protocol's classes, as such).
        CodecError: the payload (or a header) cannot be packed as msgpack.
    """
    cls = type(event)
    type_bytes = _TYPE_BYTES.get(cls)
    if type_bytes is None:
        raise _not_an_event(event)
    values = event.__dict__
    headers: dict[str, Any] = {}
    for name, header, _required, _allowed in cls.header_table:
        value = values[name]
        if value is not None:
            headers[header] = value
    if event.extra_headers:
        headers.update(event.extra_headers)
    try:
        fields: list[bytes] = [b"v", _VERSION, b"t", type_bytes, b"h", _packb(headers)]
        payload = values["payload"]
        if payload is not None:
            fields += (b"d", _packb(payload))
        key = values["entry_key"]
        if key is not None:
            fields += (b"k", key.encode())
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {event.type} event as msgpack: {exc}") from None
    return fields


def check_event(value: object) -> None:
    """Raise `UsageError` unless `value` is an event: an instance of one of the protocol's
    classes itself (a subclass may add fields the wire has no place for)."""
    if type(value) not in _TYPE_BYTES:
        raise _not_an_event(value)


def _not_an_event(value: object) -> UsageError:
    cls = type(value)
    base = next((known for known in _TYPE_BYTES if isinstance(value, known)), None)
    if base is not None:
        why = f"a subclass of ait.{base.__name__}; write an ait.{base.__name__} itself"
    else:
        names = ", ".join(f"ait.{known.__name__}" for known in _TYPE_BYTES)
        why = f"not an event; write one of {names}"
    return UsageError(f"unable to write {cls.__name__}: {why}")


def encode_payload(payload: Any) -> bytes:
    """The `d` field of a payload (msgpack).

    Raises:
        CodecError: the payload cannot be packed.
    """
    try:
        return _packb(payload)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode a payload as msgpack: {exc}") from None


def entry_size(fields: Sequence[bytes]) -> int:
    """Bytes an encoded entry occupies in field names and values (the size limit's measure)."""
    return sum(map(len, fields))


def decode_entry(entry_id: str, fields: Sequence[bytes] | Mapping[bytes, bytes]) -> Event:
    """Decode one stream entry into its event.

    Args:
        entry_id: the Redis entry id, carried by any error.
        fields: the entry's fields: a flat `[name, value, ...]` sequence or a mapping.

    Raises:
        CodecError: unknown version or type, `h`/`d` not msgpack, a header missing, of the
            wrong type or out of its allowed values, or a rule across headers broken.
    """
    try:
        return _decode(entry_id, fields)
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises a zoo of types on hostile bytes
        raise CodecError(
            f"undecodable entry: {type(exc).__name__}: {exc}", entry_id=entry_id
        ) from None


def decode_or_bad(
    entry_id: str, fields: Sequence[bytes] | Mapping[bytes, bytes]
) -> Event | BadEntry:
    """Like `decode_entry`, but a malformed entry comes back as a `BadEntry` in its place."""
    try:
        return _decode(entry_id, fields)
    except Exception as exc:
        reason = (
            exc.reason
            if isinstance(exc, CodecError)
            else f"undecodable entry: {type(exc).__name__}: {exc}"
        )
        try:
            raw = _as_mapping(fields)
        except Exception:  # not even a list or mapping of fields
            raw = {}
        return BadEntry(entry_id=entry_id, reason=reason, fields=raw)


def _as_mapping(fields: Sequence[bytes] | Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    # Foreign writers may put anything here: keep only what is bytes, as bytes.
    items: Any = (
        fields.items()
        if isinstance(fields, Mapping)
        else zip(fields[0::2], fields[1::2], strict=False)
    )
    return {k: v for k, v in items if type(k) is bytes and type(v) is bytes}


def _fail(entry_id: str, reason: str) -> CodecError:
    return CodecError(reason, entry_id=entry_id)


# Built once per type: every decoded event of a type shares one (never mutated) fields set,
# and only the types with rules across headers pay for checking them.
_FIELDS_SET = {cls: set(cls.model_fields) for cls, _ in _TYPES.values()}


def _decode(entry_id: str, fields: Sequence[bytes] | Mapping[bytes, bytes]) -> Event:
    flat = cast(list[bytes], fields) if type(fields) is list else None
    size = len(flat) if flat is not None else 0
    if (
        flat is not None
        and (size == 8 or size == 10)
        and flat[0] == b"v"
        and flat[2] == b"t"
        and flat[4] == b"h"
        and flat[6] == b"d"
    ):
        # The layout every ait writer produces (with a payload, and a resend key when it
        # may resend it): no dict to build.
        v, t, h, d = flat[1], flat[3], flat[5], flat[7]
        k = flat[9] if size == 10 and flat[8] == b"k" else None
    elif isinstance(fields, Mapping):
        v, t, h, d = fields.get(b"v"), fields.get(b"t"), fields.get(b"h"), fields.get(b"d")
        k = fields.get(b"k")
    else:
        seq = cast(Sequence[bytes], fields)
        if len(seq) == 6 and seq[0] == b"v" and seq[2] == b"t" and seq[4] == b"h":
            v, t, h, d, k = seq[1], seq[3], seq[5], None, None
        elif len(seq) % 2:
            raise _fail(entry_id, "odd number of field names and values")
        else:
            return _decode(entry_id, _as_mapping(seq))

    if v != _VERSION:
        raise _fail(
            entry_id, f"unknown protocol version {v!r} (this reader speaks {PROTOCOL_VERSION})"
        )
    known = _TYPES.get(t) if type(t) is bytes else None
    if known is None:
        raise _fail(entry_id, f"unknown event type {t!r}")
    cls, type_name = known
    if h is None:
        raise _fail(entry_id, "missing field 'h' (headers)")
    cached = _HEADERS.get((type_name, h)) if type(h) is bytes else None
    if cached is not None:
        values = cached.copy()
        if values["extra_headers"]:
            values["extra_headers"] = dict(values["extra_headers"])
    else:
        values = _check_headers(entry_id, cls, type_name, h)
        if type(h) is bytes and len(h) <= _HEADER_CACHE_BYTES:
            if len(_HEADERS) >= _HEADER_CACHE_SIZE:
                _HEADERS.clear()
            _HEADERS[(type_name, h)] = values.copy()
            if values["extra_headers"]:
                values["extra_headers"] = dict(values["extra_headers"])

    if d is None:
        if cls is Output:
            raise _fail(entry_id, "output event misses field 'd' (its list of codec events)")
    else:
        try:
            payload: Any = _unpack_payload(d)
        except Exception:
            raise _fail(entry_id, "field 'd' is not msgpack") from None
        if cls is Output and type(payload) is not list:
            raise _fail(entry_id, f"output payload must be a list, not {type(payload).__name__}")
        values["payload"] = payload
    if k is not None:
        values["entry_key"] = _entry_key(entry_id, k)

    event: Any = object.__new__(cls)
    _setattr(event, "__dict__", values)
    _setattr(event, "__pydantic_fields_set__", _FIELDS_SET[cls])
    _setattr(event, "__pydantic_extra__", None)
    _setattr(event, "__pydantic_private__", None)
    if cls.has_cross_rules:
        problem = event.wire_problem()
        if problem:
            raise _fail(entry_id, problem)
    return event


def _entry_key(entry_id: str, raw: object) -> str:
    """The resend key of an entry's `k` field: non-empty UTF-8 text."""
    if type(raw) is not bytes or not raw:
        raise _fail(entry_id, f"field 'k' must be a non-empty string, not {raw!r}")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise _fail(entry_id, f"field 'k' is not UTF-8 text: {raw!r}") from None


def encode_invocation(invocation: Invocation) -> list[bytes]:
    """The fields of a pool queue entry for `invocation` (docs/protocol.md)."""
    headers = {"channel": invocation.channel, "input-event-id": invocation.input_event_id}
    if invocation.enqueued_at is not None:
        headers["enqueued-at"] = str(invocation.enqueued_at)
    return [b"v", _VERSION, b"t", b"invocation", b"h", _packb(headers)]


def decode_invocation(entry_id: str, fields: Sequence[bytes] | Mapping[bytes, bytes]) -> Invocation:
    """The invocation of a pool queue entry.

    Raises:
        CodecError: the entry is not a well-formed invocation.
    """
    raw = _as_mapping(fields) if not isinstance(fields, Mapping) else fields
    if raw.get(b"v") != _VERSION:
        raise CodecError(f"unknown protocol version {raw.get(b'v')!r}", entry_id=entry_id)
    if raw.get(b"t") != b"invocation":
        raise CodecError(f"not an invocation entry: type {raw.get(b't')!r}", entry_id=entry_id)
    try:
        headers: Any = _unpackb(raw.get(b"h") or b"")
        enqueued = headers.get("enqueued-at")
        return Invocation(
            channel=headers["channel"],
            input_event_id=headers["input-event-id"],
            enqueued_at=int(enqueued) if enqueued is not None else None,
        )
    except Exception as exc:
        raise CodecError(f"malformed invocation entry: {exc}", entry_id=entry_id) from None


def _check_headers(entry_id: str, cls: Any, type_name: str, h: bytes) -> dict[str, Any]:
    """The checked header values of an entry (its model's fields, but the payload)."""
    try:
        headers: Any = _unpackb(h)
    except Exception:
        raise _fail(entry_id, "field 'h' is not msgpack") from None
    if type(headers) is not dict:
        raise _fail(entry_id, f"field 'h' must be a msgpack map, not {type(headers).__name__}")
    headers = cast(dict[Any, Any], headers)

    # In the models' field order, so that decoded events dump and print like built ones.
    values: dict[str, Any] = {
        "extra_headers": headers,
        "payload": None,
        "entry_key": None,
        "type": type_name,
    }
    pop = headers.pop
    for name, header, required, allowed in cls.header_table:
        value = pop(header, _ABSENT)
        if value is _ABSENT:
            if required:
                raise _fail(entry_id, f"{type_name} event misses header {header!r}")
            value = None
        elif type(value) is not str or not value:
            raise _fail(entry_id, f"header {header!r} must be a non-empty string, not {value!r}")
        elif allowed is not None and value not in allowed:
            raise _fail(
                entry_id, f"header {header!r} is {value!r}; expected one of {sorted(allowed)}"
            )
        values[name] = value
    if headers:
        for key, value in headers.items():
            if type(key) is not str or type(value) is not str:
                raise _fail(entry_id, f"header {key!r}: {value!r} is not a string pair")
    return values
