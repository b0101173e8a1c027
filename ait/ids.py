"""Identifiers: minted ids for events, messages and runs; Redis stream entry ids.

Redis entry ids (`<ms>-<seq>`) are the one cursor of `ait`: order, resume, de-duplication
and pagination all compare them. They compare as integer pairs, never as strings.
"""

from __future__ import annotations

import os
import re

from .errors import InvalidName, UsageError

__all__ = [
    "MAX_ENTRY_ID",
    "MIN_ENTRY_ID",
    "check_name",
    "entry_id_key",
    "entry_id_problem",
    "is_entry_id",
    "new_id",
]

MIN_ENTRY_ID = "0-0"
#: Redis holds each part of an entry id in 64 bits: a larger one is "Invalid stream ID".
_MAX_PART = 2**64 - 1
MAX_ENTRY_ID = f"{_MAX_PART}-{_MAX_PART}"

_ENTRY_ID = re.compile(r"\A([0-9]{1,20})-([0-9]{1,20})\Z")
# A bound of XRANGE may also be exclusive, `(<id>`, or name milliseconds only.
_BOUND = re.compile(r"\A\(?([0-9]{1,20})(?:-([0-9]{1,20}))?\Z")


def new_id() -> str:
    """A fresh random id: 32 lowercase hex characters (128 bits, like a UUID4 hex)."""
    return os.urandom(16).hex()


def is_entry_id(value: object) -> bool:
    """True when `value` is a complete Redis stream entry id such as `1700000000000-0`."""
    return entry_id_problem(value) is None


def entry_id_problem(value: object, *, bound: bool = False) -> str | None:
    """What keeps `value` from being an entry id Redis takes, in words; None if nothing.

    An entry id is `<ms>-<seq>`, each part at most 2**64-1. With `bound`, also what XRANGE
    takes as a bound: `-`, `+`, an id or milliseconds alone (`<ms>`), either after `(`.
    """
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a str"
    if bound and value in ("-", "+"):
        return None
    match = (_BOUND if bound else _ENTRY_ID).match(value)
    if match is None:
        return "is not a stream entry id like '1700000000000-0'"
    if any(part is not None and int(part) > _MAX_PART for part in match.groups()):
        return (
            "is beyond what Redis holds: each part of '<ms>-<seq>' is at most 2**64-1 "
            f"({_MAX_PART})"
        )
    return None


def entry_id_key(entry_id: str) -> tuple[int, int]:
    """The sort key of an entry id: `(milliseconds, sequence)`.

    Raises:
        UsageError: `entry_id` is not of the form `<ms>-<seq>`.
    """
    ms, sep, seq = entry_id.partition("-")
    if sep and ms.isdigit() and seq.isdigit() and entry_id.isascii():
        return int(ms), int(seq)
    raise UsageError(f"not a stream entry id: {entry_id!r} (expected '<ms>-<seq>')")


_NAME = re.compile(r"\A[A-Za-z0-9._:\-]{1,200}\Z")


def check_name(kind: str, name: object) -> str:
    """Return `name` if it is a valid channel or pool name, else raise `InvalidName`.

    Names are 1 to 200 characters of `A-Z a-z 0-9 . _ - :` (docs/protocol.md): no braces,
    which would break the Redis Cluster hash tag, and no spaces.
    """
    if isinstance(name, str) and _NAME.match(name):
        return name
    if not isinstance(name, str):
        reason = f"must be a str, not {type(name).__name__}"
    elif not name:
        reason = "must not be empty"
    elif len(name) > 200:
        reason = f"is {len(name)} characters long; at most 200 are allowed"
    else:
        bad = sorted({c for c in name if not _NAME.match(c)})
        reason = f"has characters outside A-Z a-z 0-9 . _ - : ({''.join(bad)!r})"
    raise InvalidName(kind, name, reason)
