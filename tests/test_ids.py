"""Minted ids, Redis entry ids as integer pairs, and channel/pool name checks."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ait
from ait.ids import MIN_ENTRY_ID, check_name, entry_id_key, is_entry_id, new_id

# Redis stream ids are two unsigned 64-bit integers.
U64 = st.integers(min_value=0, max_value=2**64 - 1)
NAME_ALPHABET = frozenset(string.ascii_letters + string.digits + "._-:")


# -- new_id -------------------------------------------------------------------------------


def test_new_id_is_32_lowercase_hex_characters() -> None:
    for _ in range(100):
        minted = new_id()
        assert len(minted) == 32
        assert set(minted) <= set("0123456789abcdef")


def test_new_id_is_unique() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000


# -- entry ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry_id", "key"),
    [
        ("0-0", (0, 0)),
        ("1-0", (1, 0)),
        ("1700000000000-42", (1700000000000, 42)),
        ("007-008", (7, 8)),
        ("18446744073709551615-18446744073709551615", (2**64 - 1, 2**64 - 1)),
    ],
)
def test_entry_id_key_parses_milliseconds_and_sequence(entry_id: str, key: tuple[int, int]) -> None:
    assert entry_id_key(entry_id) == key


def test_entry_id_key_orders_numerically_not_lexicographically() -> None:
    assert "10-0" < "9-0"  # the trap: as strings the order is wrong
    assert entry_id_key("10-0") > entry_id_key("9-0")
    assert entry_id_key("1-10") > entry_id_key("1-9")
    assert entry_id_key("2-0") > entry_id_key("1-99999")
    ids = ["10-0", "9-0", "1-10", "1-9", "100-0", "9-1"]
    assert sorted(ids, key=entry_id_key) == ["1-9", "1-10", "9-0", "9-1", "10-0", "100-0"]


@given(U64, U64, U64, U64)
@settings(max_examples=300)
def test_entry_id_key_order_is_integer_pair_order(a: int, b: int, c: int, d: int) -> None:
    left, right = f"{a}-{b}", f"{c}-{d}"
    assert entry_id_key(left) == (a, b)
    assert (entry_id_key(left) < entry_id_key(right)) == ((a, b) < (c, d))
    assert is_entry_id(left)


def test_min_entry_id_is_the_smallest_key() -> None:
    assert MIN_ENTRY_ID == "0-0"
    assert entry_id_key(MIN_ENTRY_ID) == (0, 0)
    assert entry_id_key(MIN_ENTRY_ID) < entry_id_key("0-1")


BAD_ENTRY_IDS = [
    "",
    "1",
    "1-",
    "-1",
    "-",
    "-1-0",
    "1-2-3",
    "a-b",
    "1-a",
    "1.5-0",
    "+1-0",
    "1-+0",
    " 1-0",
    "1-0 ",
    "1-0\n",
    "1_0-0",
    "*",
    "$",
    "1-*",
    "\u0661-\u0660",  # Arabic-Indic digits: isdigit() and \d accept them, Redis does not
    "\u00b2-0",  # superscript two: isdigit() is True, int() refuses it
    "\uff11-0",  # fullwidth one
]


@pytest.mark.parametrize("entry_id", BAD_ENTRY_IDS)
def test_entry_id_key_refuses_what_is_not_an_entry_id(entry_id: str) -> None:
    with pytest.raises(ait.UsageError, match="not a stream entry id"):
        entry_id_key(entry_id)


@pytest.mark.parametrize("entry_id", BAD_ENTRY_IDS)
def test_is_entry_id_refuses_what_is_not_an_entry_id(entry_id: str) -> None:
    assert not is_entry_id(entry_id)


@pytest.mark.parametrize("value", [None, 5, 1.0, b"1-0", ["1", "0"], ("1", "0")])
def test_is_entry_id_is_false_for_non_strings(value: object) -> None:
    assert not is_entry_id(value)


def test_is_entry_id_accepts_up_to_twenty_digits_per_part() -> None:
    assert is_entry_id("18446744073709551615-0")
    assert is_entry_id("0-18446744073709551615")
    assert not is_entry_id("1" * 21 + "-0")
    assert not is_entry_id("0-" + "1" * 21)


# Two runs of digits (some of other scripts, which str.isdigit() or \d also accept) around
# a separator, or any text at all.
_DIGITS = st.text(alphabet="0123456789\u00b2\u0661\uff11+ ", max_size=6)
_SEPARATORS = st.sampled_from(["-", "", "--", "_"])
ID_LIKE_TEXT = st.tuples(_DIGITS, _SEPARATORS, _DIGITS).map("".join) | st.text(max_size=30)


@given(ID_LIKE_TEXT)
@settings(max_examples=500)
def test_entry_id_key_raises_only_usage_error(text: str) -> None:
    try:
        key = entry_id_key(text)
    except ait.UsageError:
        assert not is_entry_id(text)
    else:
        ms, _, seq = text.partition("-")
        assert text.isascii()
        assert key == (int(ms), int(seq))


@given(st.from_regex(r"\A[0-9]{1,20}-[0-9]{1,20}\Z"))
@settings(max_examples=200)
def test_every_well_formed_id_within_64_bits_is_an_entry_id(text: str) -> None:
    ms, _, seq = text.partition("-")
    assert is_entry_id(text) == (int(ms) <= 2**64 - 1 and int(seq) <= 2**64 - 1)
    assert entry_id_key(text) == (int(ms), int(seq))


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "chat-42", "x" * 200, "A.Z_a-z:0.9", string.ascii_letters + string.digits + "._-:"],
)
def test_check_name_returns_a_valid_name(name: str) -> None:
    assert check_name("channel", name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "must not be empty"),
        ("x" * 201, "is 201 characters long; at most 200 are allowed"),
        ("x" * 5000, "is 5000 characters long"),
        ("chat{42}", "has characters outside A-Z a-z 0-9 . _ - : ('{}')"),
        ("{chat}", "('{}')"),
        ("my chat", "(' ')"),
        (" chat", "(' ')"),
        ("chat\n", r"('\n')"),
        ("chat\t1", r"('\t')"),
        ("a/b", "('/')"),
        ("caf\u00e9", "('\u00e9')"),
        ("chat*!", "('!*')"),
    ],
)
def test_check_name_refuses_bad_names_and_says_why(name: str, fragment: str) -> None:
    with pytest.raises(ait.InvalidName) as caught:
        check_name("channel", name)
    error = caught.value
    assert (error.kind, error.name) == ("channel", name)
    assert fragment in error.reason
    assert str(error) == f"invalid channel name {name!r}: {error.reason}"


@pytest.mark.parametrize("name", [None, 42, 4.2, b"chat", ["chat"], object()])
def test_check_name_refuses_non_strings(name: object) -> None:
    with pytest.raises(ait.InvalidName, match=f"must be a str, not {type(name).__name__}"):
        check_name("pool", name)


def test_invalid_name_is_a_usage_error_and_a_value_error() -> None:
    with pytest.raises(ait.InvalidName) as caught:
        check_name("pool", "has space")
    assert isinstance(caught.value, ait.UsageError)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ait.AitError)
    assert str(caught.value).startswith("invalid pool name 'has space': ")


@given(st.text(max_size=210))
@settings(max_examples=500)
def test_check_name_accepts_exactly_the_documented_names(name: str) -> None:
    valid = 1 <= len(name) <= 200 and set(name) <= NAME_ALPHABET
    try:
        assert check_name("channel", name) == name
    except ait.InvalidName as error:
        assert not valid, error
        assert error.reason
    else:
        assert valid


@given(st.text(alphabet=sorted(NAME_ALPHABET), min_size=1, max_size=200))
@settings(max_examples=200)
def test_check_name_accepts_every_name_of_the_allowed_alphabet(name: str) -> None:
    assert check_name("channel", name) == name


@pytest.mark.parametrize("entry_id", [f"{2**64}-0", f"0-{2**64}", "99999999999999999999-0"])
def test_is_entry_id_refuses_parts_beyond_64_bits(entry_id: str) -> None:
    """Redis holds each part in 64 bits: a larger one is "Invalid stream ID" to it."""
    assert not is_entry_id(entry_id)
