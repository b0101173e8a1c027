"""The Python fold reproduces every expected view of the conformance corpus (conformance/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "conformance"))

import generate  # noqa: E402  # pyright: ignore[reportMissingImports]

LOGS = sorted((ROOT / "conformance" / "logs").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_the_corpus_has_every_scenario() -> None:
    assert {path.stem for path in LOGS} == set(generate.SCENARIOS)


@pytest.mark.parametrize("path", LOGS, ids=[path.stem for path in LOGS])
def test_python_fold_reproduces_the_expected_views(path: Path) -> None:
    log = load(path)
    entries = generate.entries_of(log)
    assert log["views"], "a log without views checks nothing"
    for view in log["views"]:
        got = generate.play(entries, view)
        for step, (expected, actual) in enumerate(zip(view["expect"], got, strict=True)):
            assert actual == expected, f"view {view['name']!r}, step {step}: {view['steps'][step]}"


@pytest.mark.parametrize("path", LOGS, ids=[path.stem for path in LOGS])
def test_json_events_round_trip(path: Path) -> None:
    for item in load(path)["entries"]:
        event = generate.event_from_json(item["event"], item["id"])
        assert generate.event_to_json(event) == item["event"]


def test_regenerating_gives_the_same_corpus(tmp_path: Path) -> None:
    # The order of the channel is fixed by the scenarios; how the writer splits a stream of
    # deltas into entries could vary with timing, so compare what a catch-up view shows.
    anyio.run(generate.generate, tmp_path, [])
    for path in LOGS:
        fresh, stored = load(tmp_path / path.name), load(path)
        assert [e["event"]["type"] for e in fresh["entries"] if e["event"]["type"] != "output"] == [
            e["event"]["type"] for e in stored["entries"] if e["event"]["type"] != "output"
        ], path.stem
        assert catch_up(fresh) == catch_up(stored), path.stem


def catch_up(log: dict[str, Any]) -> dict[str, Any]:
    """The last snapshot of the catch-up view, without the text of cancelled messages (how
    many tokens a run streams before it honours a cancel depends on timing)."""
    (view,) = [v for v in log["views"] if v["name"] == "catch-up"]
    shown = view["expect"][-1]
    for message in shown["messages"]:
        if message["status"] == "cancelled":
            message["text"] = "..."
    return shown
