"""ait.js (ait/web/static/ait.js) folds every log of the conformance corpus into the views the
Python fold makes: runs the node tests of js/test (`node --test`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).parents[1] / "js" / "test"


def test_ait_js_conforms() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: ait.js is not tested (install Node.js 18 or newer)")
    if not (JS_TESTS / "node_modules").exists():
        npm = shutil.which("npm")
        if npm is not None:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=JS_TESTS, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
        else:  # the tests need no package: node alone runs them
            lock = json.loads((JS_TESTS / "package-lock.json").read_text())
            assert set(lock["packages"]) == {""}, "js/test has dependencies: install npm"
    done = subprocess.run(
        [node, "--test"], cwd=JS_TESTS, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"node --test failed:\n{done.stdout}\n{done.stderr}"
