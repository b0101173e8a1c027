"""The demo as `scripts/demo` runs it: a clean run, and it says what it leaves running."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ait.bus.embedded import answers_ping

from .test_cli import ait_cli, env


@pytest.mark.timeout(600)  # five answers of the local model, on a busy machine too
def test_the_demo_says_the_redis_it_started_goes_on_and_how_to_stop_it(
    home: dict[str, str],
) -> None:
    socket_path = home["AIT_REDIS_SOCKET"]
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "ait.demo"],
        capture_output=True, text=True, timeout=600, env=env(**home), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    tail = done.stdout.splitlines()[-5:]
    assert any("the demo started goes on running in the background" in line for line in tail)
    assert any(line.endswith("redis --stop") for line in tail), tail
    assert answers_ping(socket_path)  # what it said is true

    stopped = ait_cli("redis", "--stop", **home)
    assert stopped.returncode == 0 and "stopped the embedded Redis" in stopped.stdout
    assert not answers_ping(socket_path)
