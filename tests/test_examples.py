"""The examples run as programs, as a newcomer runs them, against the suite's real Redis.

Each runs in a subprocess with `--redis` (and `--scripted`/`--once` where it has them) on a
channel and a worker pool of its own; the tests check what it prints, and where a test
plays the other side (a client for an agent example, an agent for the observer) what that
side saw. Tests that load the real SmolLM2 model are marked `slow`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

import ait
from ait.providers import smollm2_path
from ait.testing import ScriptedProvider

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ROOT / "agent_examples"
CLIENTS = ROOT / "client_examples"
TIMEOUT = 60.0


class Program:
    """An example running in a subprocess; stdout and stderr are collected as they come."""

    def __init__(self, path: Path, *args: str, cwd: Path | None = None) -> None:
        self.command = [sys.executable, "-u", str(path), *args]
        self.process = subprocess.Popen(
            self.command,
            cwd=cwd or ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"},
        )
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self._chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def write(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    async def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait until the output matches `pattern` (a regular expression)."""
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.output)) is None:
            if self.process.poll() is not None:
                await anyio.sleep(0.1)  # the reader may still hold the last chunk
                if (found := re.search(pattern, self.output)) is not None:
                    break
                pytest.fail(f"{self.describe()} exited without printing {pattern!r}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.describe()} did not print {pattern!r} in {timeout} s")
            await anyio.sleep(0.02)
        return found

    async def finish(self, timeout: float = TIMEOUT) -> str:
        """Close stdin, wait for a clean exit, and return everything it printed."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await anyio.to_thread.run_sync(lambda: self.process.wait(timeout))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.describe()} did not exit in {timeout} s")
        self._reader.join(5)
        assert self.process.returncode == 0, self.describe()
        return self.output

    def describe(self) -> str:
        name = Path(self.command[2]).name
        return f"{name} (exit {self.process.returncode}); it printed:\n{self.output}"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._reader.join(5)


@pytest.fixture
def start() -> Iterator[Any]:
    """Start an example (`start(path, *args)`); whatever still runs is killed at the end."""
    programs: list[Program] = []

    def starter(path: Path, *args: str, cwd: Path | None = None) -> Program:
        programs.append(Program(path, *args, cwd=cwd))
        return programs[-1]

    yield starter
    for program in programs:
        program.close()


def run_example(path: Path, *args: str, stdin: str = "", cwd: Path | None = None) -> str:
    """Run an example to its end; return what it printed (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-u", str(path), *args],
        cwd=cwd or ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, (
        f"{path.name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


async def ask(bus: ait.Bus, channel: str, pool: str, text: str) -> tuple[str, ait.RunInfo]:
    """Send `text` as a client, the way a UI does; return the streamed answer and the run."""
    with anyio.fail_after(TIMEOUT):
        async with ait.ClientSession(bus, channel, client_id="tester", pool=pool) as client:
            active = await client.view.send(text)
            pieces = [piece async for piece in active.text_stream()]
            return "".join(pieces), await active.wait()


# -- agent examples ------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["local_llama_agent.py", "openai_agent.py"])
async def test_a_scripted_agent_answers_one_queued_input_and_exits(
    start: Any, bus: ait.Bus, redis_url: str, channel_name: str, example: str
) -> None:
    pool = f"pool-{channel_name}"
    agent = start(AGENTS / example, "--redis", redis_url, "--scripted", "--once", "--pool", pool)
    await agent.wait_for(f"serving pool '{pool}'")
    answer, run = await ask(bus, channel_name, pool, "hello agent")
    assert answer == "You said: hello agent"
    assert run.status == "complete"
    output = await agent.finish()
    assert f"agent: answered run {run.run_id} (complete)" in output


@pytest.mark.slow
async def test_the_local_llama_agent_answers_with_smollm2(
    start: Any, bus: ait.Bus, redis_url: str, channel_name: str
) -> None:
    pool = f"pool-{channel_name}"
    model = "llama-cpp:smollm2?n_threads=1&n_ctx=1024"
    args = ["--redis", redis_url, "--model", model, "--once", "--pool", pool, "--max-tokens", "16"]
    agent = start(AGENTS / "local_llama_agent.py", *args)
    answer, run = await ask(bus, channel_name, pool, "What is the capital of France?")
    assert run.status == "complete" and answer.strip()
    output = await agent.finish()
    assert "with llama-cpp:smollm2" in output
    assert f"agent: answered run {run.run_id} (complete)" in output


@pytest.fixture
def llama_server(tmp_path: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2 on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "1",
    ]  # fmt: skip
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + TIMEOUT
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail(f"the llama.cpp server did not start:\n{log.read_text()[-3000:]}")
        yield base_url
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.slow
async def test_the_openai_agent_answers_through_a_compatible_server(
    start: Any, bus: ait.Bus, redis_url: str, channel_name: str, llama_server: str
) -> None:
    pool = f"pool-{channel_name}"
    args = ["--redis", redis_url, "--base-url", llama_server, "--model", "local", "--once"]
    agent = start(AGENTS / "openai_agent.py", *args, "--pool", pool, "--max-tokens", "16")
    answer, run = await ask(bus, channel_name, pool, "Say hello.")
    assert run.status == "complete" and answer.strip()
    output = await agent.finish()
    assert f"with local at {llama_server}" in output
    assert f"agent: answered run {run.run_id} (complete)" in output


def test_the_http_doorbell_wakes_the_agent_with_a_post(redis_url: str, channel_name: str) -> None:
    output = run_example(
        AGENTS / "http_doorbell_agent.py",
        *("--redis", redis_url, "--scripted", "--once", "--channel", channel_name),
        *("--ask", "ring ring"),
    )
    assert re.search(r"agent: doorbell at http://127\.0\.0\.1:\d+/invoke", output)
    assert re.search(r"agent: POST /invoke for input [0-9a-f]{32} -> 202", output)
    assert "You said: ring ring" in output
    (run_id,) = re.findall(r"client: run ([0-9a-f]{32}) ended: complete", output)
    assert f"agent: answered run {run_id} (complete)" in output


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_doorbell_app_refuses_a_body_that_is_not_an_invocation(bus: ait.Bus) -> None:
    app = load(AGENTS / "http_doorbell_agent.py").create_app(bus, ScriptedProvider())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as http:
        response = await http.post("/invoke", content=b'{"channel": "c"}')
    assert response.status_code == 400
    assert "input_event_id" in response.json()["error"]


def test_the_tool_agent_runs_its_tool_on_the_client(
    redis_url: str, channel_name: str, tmp_path: Path
) -> None:
    for name in ("notes.txt", "photo.jpg"):
        (tmp_path / name).write_text("x")
    output = run_example(
        AGENTS / "tool_agent.py",
        *("--redis", redis_url, "--scripted", "--once"),
        *("--channel", channel_name, "--pool", f"pool-{channel_name}"),
        cwd=tmp_path,
    )
    (run_id,) = re.findall(r"agent: run ([0-9a-f]{32}) calls list_files, suspends", output)
    assert "client: ran list_files({'folder': '.'}) here: ['notes.txt', 'photo.jpg']" in output
    assert f"client: resumed run {run_id}" in output  # the same run, resumed
    assert f"agent: run {run_id} resumed with the tool's result" in output
    assert "Your folder holds 2 files: notes.txt, photo.jpg." in output
    assert f"client: run {run_id} ended: complete" in output


KEPT = "['old-notes.txt', 'todo.txt']"


@pytest.mark.parametrize(
    ("decision", "stdin", "verdict", "answer", "left"),
    [
        ("approve", "", "approved", "Deleted old-notes.txt.", "['todo.txt']"),
        ("deny", "", "denied", "OK, I kept old-notes.txt (keep it).", KEPT),
        ("ask", "y\n", "approved", "Deleted old-notes.txt.", "['todo.txt']"),  # a human said y
    ],
    ids=["approve", "deny", "ask-yes"],
)
def test_the_approval_agent_runs_the_tool_only_when_approved(
    redis_url: str,
    channel_name: str,
    decision: str,
    stdin: str,
    verdict: str,
    answer: str,
    left: str,
) -> None:
    output = run_example(
        AGENTS / "approval_agent.py",
        *("--redis", redis_url, "--scripted", "--once", "--decision", decision),
        *("--reason", "keep it", "--channel", channel_name, "--pool", f"pool-{channel_name}"),
        stdin=stdin,
    )
    (run_id,) = re.findall(r"agent: run ([0-9a-f]{32}) asks approval and suspends", output)
    assert f"client: {verdict} delete_file" in output
    assert f"agent: run {run_id} resumed: the call was {verdict}" in output
    assert answer in output
    assert f"client: run {run_id} ended: complete" in output
    assert f"sandbox: {left}" in output


# -- client examples -----------------------------------------------------------------------


def test_the_terminal_chat_sends_edits_regenerates_and_pages(
    redis_url: str, channel_name: str
) -> None:
    commands = ["hello", "/regen", "/branches", "/edit 1 hi again", "/branches", "/older"]
    output = run_example(
        CLIENTS / "terminal_chat.py",
        *("--redis", redis_url, "--scripted", "--channel", channel_name),
        *("--client-id", "alice", "--pool", f"pool-{channel_name}"),
        stdin="\n".join(commands) + "\n",
    )
    assert f"channel {channel_name} as alice" in output
    assert output.count("assistant: You said: hello\n") == 2  # the answer, then its regeneration
    assert "  1 user: hello\n  2 assistant [2/2]: You said: hello\n" in output
    assert "assistant: You said: hi again\n" in output
    assert "  1 user [2/2]: hi again\n  2 assistant: You said: hi again\n" in output
    assert "0 older messages" in output


async def test_ctrl_c_in_the_terminal_chat_cancels_the_answer_not_the_chat(
    start: Any, redis_url: str, channel_name: str
) -> None:
    chat = start(
        CLIENTS / "terminal_chat.py",
        *("--redis", redis_url, "--scripted", "--channel", channel_name),
        *("--pool", f"pool-{channel_name}"),
    )
    await chat.wait_for("Ctrl-D quits")
    chat.write("count\n")  # the scripted agent counts to 1000, slowly
    await chat.wait_for(r"assistant: 1 2 3 ")
    chat.process.send_signal(signal.SIGINT)
    await chat.wait_for(r"\[cancelled\]")
    chat.write("still here?\n")
    await chat.wait_for("You said: still here?")
    output = await chat.finish()
    assert "1000" not in output


async def test_the_observer_prints_every_run_as_it_happens(
    start: Any, bus: ait.Bus, redis_url: str, channel_name: str
) -> None:
    observer = start(
        CLIENTS / "observer.py", "--redis", redis_url, "--channel", channel_name, "--count", "2"
    )
    await observer.wait_for(f"observing {channel_name}")
    provider = ScriptedProvider(["one ", "two ", "three"], delay=0.05)  # usage: 3 tokens

    async def answer(run: ait.Run) -> None:
        await run.start()
        result = await run.pipe(provider.stream())
        await run.end(result.reason)

    pool = f"pool-{channel_name}"
    worker = ait.AgentWorker(bus, answer, pool=pool)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        with anyio.fail_after(TIMEOUT):
            # Alice asks twice; she cancels the second answer at its first token.
            async with ait.ClientSession(bus, channel_name, client_id="alice", pool=pool) as me:
                first = await (await me.view.send("first")).wait()
                second = await me.view.send("second")
                async for _ in second.text_stream():
                    await second.cancel()
                    break
                cancelled = await second.wait()
        worker.stop()

        output = await observer.finish()
        assert cancelled.status == "cancelled"
        for run in (first, cancelled):
            assert f"run {run.run_id[:8]} started: answering a message of alice" in output
        assert f"run {first.run_id[:8]} ended: complete, 3 tokens, 1 message(s)" in output
        assert f"run {cancelled.run_id[:8]} ended: cancelled" in output


def test_the_observer_demo_watches_its_own_runs(redis_url: str, channel_name: str) -> None:
    output = run_example(
        CLIENTS / "observer.py",
        *("--redis", redis_url, "--channel", channel_name, "--demo", "--count", "2"),
    )
    assert f"observing {channel_name} (0 runs in history)" in output
    assert len(re.findall(r"run [0-9a-f]{8} started: answering a message of alice", output)) == 2
    assert re.search(r"run [0-9a-f]{8} ended: complete, 5 tokens, 1 message\(s\)", output)
    assert re.search(r"run [0-9a-f]{8} ended: cancelled", output)


BRANCHES = """\
branch 1:
    user [1/2]: What is a branch?
    assistant [1/2]: answer 1 to 'What is a branch?'
branch 2:
    user [1/2]: What is a branch?
    assistant [2/2]: answer 2 to 'What is a branch?'
    user: And a tree?
    assistant: answer 3 to 'And a tree?'
branch 3:
    user [2/2]: What is a leaf?
    assistant: answer 4 to 'What is a leaf?'
the view shows:
    user [2/2]: What is a leaf?
    assistant: answer 4 to 'What is a leaf?'
"""


def test_the_branch_explorer_prints_every_branch(redis_url: str, channel_name: str) -> None:
    args = ["--redis", redis_url, "--scripted", "--channel", channel_name]
    built = run_example(CLIENTS / "branch_explorer.py", *args, "--pool", f"pool-{channel_name}")
    assert built == BRANCHES


def test_the_branch_explorer_reads_back_a_conversation(redis_url: str, channel_name: str) -> None:
    args = ["--redis", redis_url, "--scripted", "--channel", channel_name]
    run_example(CLIENTS / "branch_explorer.py", *args, "--pool", f"pool-{channel_name}")
    # Again: the channel holds the conversation now, and a new client reads it back.
    read = run_example(CLIENTS / "branch_explorer.py", *args, "--pool", f"pool-{channel_name}")
    assert read == BRANCHES


def test_the_history_pager_pages_back_to_the_first_message(
    redis_url: str, channel_name: str
) -> None:
    output = run_example(
        CLIENTS / "history_pager.py",
        "--redis",
        redis_url,
        "--channel",
        channel_name,
        "--turns",
        "23",
    )
    pages = re.split(r"^page \d+: ", output, flags=re.MULTILINE)[1:]
    assert [page.splitlines()[0] for page in pages] == [
        *["10 messages (older ones left: True)"] * 4,
        "6 messages (older ones left: False)",
    ]
    assert "user: question 23" in pages[0] and "user: question 1\n" in pages[-1]
    shown = re.findall(r"^    user: question (\d+)$", output, flags=re.MULTILINE)
    assert sorted(map(int, shown)) == list(range(1, 24))  # every turn, once
    assert output.rstrip().endswith("all 46 messages shown, oldest first")


def test_examples_use_only_the_public_api() -> None:
    """Examples import `ait`, `ait.providers` and `ait.testing`: nothing deeper."""
    for path in [*AGENTS.glob("*.py"), *CLIENTS.glob("*.py")]:
        imports = re.findall(r"^(?:from|import) (ait\S*)", path.read_text(), flags=re.MULTILINE)
        assert set(imports) <= {"ait", "ait.providers", "ait.testing"}, path.name
