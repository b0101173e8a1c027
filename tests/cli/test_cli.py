"""The `ait` command, run as a user runs it: a subprocess, its output and exit status."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import pytest

import ait
from ait.cli._common import fail, run
from ait.codec.chat import ChatCodec
from ait.ids import check_name, new_id

ROOT = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("AIT_")}
    values["PYTHONPATH"] = str(ROOT)
    values["NO_COLOR"] = "1"
    values.update(extra)
    return values


def ait_cli(
    *args: str,
    redis: str | None = None,
    stdin: str | None = None,
    timeout: float = 60,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ait", *args]
    if redis is not None:
        command += ["--redis", redis]
    return subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(**extra),
        check=False,
    )


@contextlib.contextmanager
def spawned(*args: str, **extra: str) -> Iterator[subprocess.Popen[str]]:
    """`ait ARGS` running in the background; killed, waited for and its pipes closed after,
    whatever happened (a process left running fails a later test with a ResourceWarning)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ait", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(**extra),
    )  # fmt: skip
    with process:  # closes the pipes and waits, after the kill below
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


async def conversation(url: str, channel: str) -> None:
    """A question, its answer, and an edit of the question with another answer."""
    async with ait.Bus.from_url(url) as bus:
        ch = bus.channel(channel)

        def user(mid: str, text: str, **extra: str) -> ait.Input:
            return ait.Input(
                event_id=f"e-{mid}", message_id=mid, role="user", client_id="cli-test",
                payload=ChatCodec.user_text(text), **extra,
            )  # fmt: skip

        def answer(run: str, anchor: str, text: str) -> list[ait.Event]:
            start = ait.RunStart(
                run_id=run, invocation_id="i", input_event_id=f"e-{anchor}",
                input_message_id=anchor, run_client_id="cli-test", parent=anchor,
            )  # fmt: skip
            out = ait.Output(
                run_id=run, message_id=f"a-{run}", role="assistant", parent=anchor,
                payload=ChatCodec.user_text(text) + [{"type": "finish"}],
            )  # fmt: skip
            return [start, out, ait.RunEnd(run_id=run, invocation_id="i", reason="complete")]

        await ch.publish_many(
            [user("q1", "first question"), *answer("r1", "q1", "first answer")]
            + [user("q2", "edited question", fork_of="q1"), *answer("r2", "q2", "second answer")]
        )


def test_help_and_usage_errors() -> None:
    assert ait_cli("--help").returncode == 0
    missing = ait_cli()
    assert missing.returncode == 2 and "COMMAND" in missing.stderr


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["history", "x", "--redis", "nope"], 2, "invalid Redis URL 'nope'"),
        (
            ["history", "x", "--redis", "redis://127.0.0.1:1/0"],
            1,
            "cannot reach Redis at redis://127.0.0.1:1",
        ),
        (["tail", "bad name", "--redis", "redis://127.0.0.1:1/0"], 1, "cannot reach Redis"),
        (["agent", "--model", "bogus:x"], 2, "unknown kind 'bogus'"),
        (["agent", "--model", "nocolon"], 2, "bad model spec 'nocolon'"),
        (
            ["agent", "--model", "llama-cpp:/no/such/model.gguf"],
            2,
            "no model file at /no/such/model.gguf",
        ),
        (["agent", "--model", "scripted:hi?speed=2"], 2, "scripted takes only delay"),
        (["agent", "--model", "openai:gpt-x"], 2, "OpenAI needs an API key"),
        (
            ["agent", "--model", "scripted:hi", "--concurrency", "0"],
            2,
            "--concurrency must be at least 1",
        ),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(
    args: list[str], status: int, message: str
) -> None:
    result = ait_cli(*args)
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_channel_names_are_refused(redis_url: str) -> None:
    for command in ("tail", "history", "chat"):
        for name, reason in (("bad name", "has characters outside"), ("", "must not be empty")):
            result = ait_cli(command, name, redis=redis_url, stdin="")
            assert result.returncode == 2, result.stderr
            assert result.stderr.startswith(f"ait: invalid channel name {name!r}: {reason}")
            assert result.stderr.count("\n") == 1, result.stderr


async def _in_a_task_group(*errors: BaseException) -> None:
    async def raise_(error: BaseException) -> None:
        raise error

    async with anyio.create_task_group() as tg:
        for error in errors:
            tg.start_soon(raise_, error)


async def _bad_name() -> None:
    check_name("channel", "my chan")


async def _nested_command_error() -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_in_a_task_group, ValueError("a bug"))
        fail("no Redis", 1)


@pytest.mark.parametrize(
    ("command", "status", "line"),
    [
        (_bad_name, 2, "invalid channel name 'my chan'"),  # raised outside any task group
        (lambda: _in_a_task_group(ait.errors.InvalidName("channel", "", "must not be empty")),
         2, "invalid channel name '': must not be empty"),
        (lambda: _in_a_task_group(ait.BusError("Redis went away")), 1, "Redis went away"),
        (_nested_command_error, 1, "no Redis"),
    ],
)  # fmt: skip
def test_the_runner_reports_an_error_in_one_line_even_from_a_task_group(
    command: Callable[[], Awaitable[None]],
    status: int,
    line: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(command) == status
    err = capsys.readouterr().err
    assert err.startswith(f"ait: {line}") and err.count("\n") == 1, err


def test_the_runner_lets_a_bug_show_its_traceback() -> None:
    with pytest.raises(BaseExceptionGroup):  # two errors: not one failure to report
        run(lambda: _in_a_task_group(ait.BusError("one"), ait.BusError("two")))
    with pytest.raises(BaseExceptionGroup):
        run(lambda: _in_a_task_group(ValueError("a bug")))


def test_history_prints_every_branch_and_the_selected_one(redis_url: str) -> None:
    channel = f"cli-{new_id()[:8]}"
    anyio.run(conversation, redis_url, channel)
    tree = ait_cli("history", channel, redis=redis_url)
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert any(line.startswith("├─") and "first question" in line for line in lines)
    assert any(line.startswith("└─ *") and "edited question" in line for line in lines)
    assert any("* assistant" in line and "second answer" in line for line in lines)
    selected = ait_cli("history", channel, "--selected", redis=redis_url).stdout
    assert "edited question" in selected and "first question" not in selected
    document = json.loads(ait_cli("history", channel, "--json", redis=redis_url).stdout)
    by_text = {m["text"]: m for m in document["messages"]}
    assert set(by_text) == {"first question", "first answer", "edited question", "second answer"}
    assert by_text["edited question"]["siblings"] == ["q1", "q2"]
    assert by_text["first answer"]["selected"] is False
    assert {r["status"] for r in document["runs"]} == {"complete"}
    empty = ait_cli("history", f"empty-{new_id()[:6]}", redis=redis_url)
    assert empty.returncode == 0 and "has no messages" in empty.stdout


def test_tail_prints_events_raw_fields_and_bad_entries(redis_url: str) -> None:
    channel = f"cli-{new_id()[:8]}"
    anyio.run(conversation, redis_url, channel)

    async def garbage() -> None:
        async with ait.Bus.from_url(redis_url) as bus:
            await bus.handle.client.xadd(bus.channel(channel).key, {"junk": "1"})

    anyio.run(garbage)
    decoded = ait_cli("tail", channel, "--from", "0-0", "--count", "9", redis=redis_url)
    assert decoded.returncode == 0, decoded.stderr
    lines = decoded.stdout.splitlines()
    assert len(lines) == 9
    assert "input" in lines[0] and "'first question'" in lines[0]
    assert "run.start" in lines[1] and "run.end" in lines[3] and "complete" in lines[3]
    assert "edit of q1" in lines[4]
    assert "BAD ENTRY" in lines[8]
    raw = ait_cli("tail", channel, "--from", "0-0", "--count", "2", "--raw", redis=redis_url)
    first = json.loads(raw.stdout.splitlines()[0].split(" ", 1)[1])
    assert first["t"] == "input" and first["h"]["message-id"] == "q1"
    assert first["d"] == ChatCodec.user_text("first question")


def test_tail_marks_a_writers_resend_and_shows_its_key(redis_url: str) -> None:
    channel = f"cli-{new_id()[:8]}"
    text = ChatCodec.user_text("once")  # one text delta
    said = ait.Output(run_id="r", message_id="a", role="assistant", parent="q", payload=text)
    said = said.model_copy(update={"entry_key": "w-1"})  # as a run's writer keys it

    async def resent() -> None:
        async with ait.Bus.from_url(redis_url) as bus:
            await bus.channel(channel).publish_many([said, said])

    anyio.run(resent)
    decoded = ait_cli("tail", channel, "--from", "0-0", "--count", "2", redis=redis_url)
    assert decoded.returncode == 0, decoded.stderr
    first, second = decoded.stdout.splitlines()
    assert "'once'" in first and "resent" not in first
    assert "'once'" in second and "resent: readers fold it once" in second
    raw = ait_cli("tail", channel, "--from", "0-0", "--count", "1", "--raw", redis=redis_url)
    fields = json.loads(raw.stdout.splitlines()[0].split(" ", 1)[1])
    assert fields["k"] == "w-1" and "entry-key" not in fields["h"]


def test_tail_follows_new_events_live(redis_url: str) -> None:
    channel = f"cli-{new_id()[:8]}"

    async def publish(number: int) -> None:
        async with ait.Bus.from_url(redis_url) as bus:
            await bus.channel(channel).publish(
                ait.Cancel(event_id=f"c{number}", client_id="watcher", scope="all")
            )

    with spawned("tail", channel, "--count", "1", "--redis", redis_url) as process:
        # `tail` follows from the moment it has subscribed, which nothing outside can see:
        # publish until one event reaches it (it exits after one).
        deadline = time.monotonic() + 30
        for number in itertools.count():
            anyio.run(publish, number)
            try:
                process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                assert time.monotonic() < deadline, "tail printed nothing"
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "cancel" in out and "all runs" in out


def test_agent_answers_a_queued_input_and_reports_the_run(redis_url: str) -> None:
    channel, pool = f"cli-{new_id()[:8]}", f"pool-{new_id()[:8]}"

    async def send() -> None:
        async with (
            ait.Bus.from_url(redis_url) as bus,
            ait.ClientSession(bus, channel, client_id="tester", pool=pool) as client,
        ):
            await client.view.send("hello?")

    anyio.run(send)
    result = ait_cli(
        "agent", "--model", "scripted:Hi there friend", "--pool", pool, "--once", redis=redis_url
    )
    assert result.returncode == 0, result.stderr
    assert f"pool {pool}" in result.stdout
    report = result.stdout.splitlines()[-1]
    assert channel in report and "3 tokens" in report and "complete" in report

    async def answer() -> str:
        async with ait.Bus.from_url(redis_url) as bus:
            tree = ait.Tree()
            tree.apply(await bus.channel(channel).read(count=100))
            return ait.View(tree).messages[-1].text

    assert anyio.run(answer) == "Hi there friend"


def test_chat_reads_a_script_from_a_pipe(redis_url: str) -> None:
    channel = f"cli-{new_id()[:8]}"
    script = "\n".join(
        [
            "hello",
            "/regen",
            "/branches",
            "/select 2 1",
            "/edit 1 hello again",
            "/older",
            "/nope",
            "/quit",
        ]
    )
    result = ait_cli(
        "chat", channel, "--model", "scripted:Hi there", "--pool", f"p-{new_id()[:6]}",
        "--client-id", "alice", redis=redis_url, stdin=script + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # No prompt and no echo from a pipe: the conversation as it goes, and the answers to
    # the commands.
    assert result.stdout.splitlines()[1:] == [
        "  1 you: hello",
        "  2 assistant: Hi there",
        "  2 assistant [2/2]: Hi there",  # /regen: the new answer, selected
        "message 2: 2 alternatives, showing 2",
        "  1 you: hello",  # /select 2 1 shows the branch
        "  2 assistant [1/2]: Hi there",
        "  1 you [2/2]: hello again",  # /edit 1: the edit, selected, and its answer
        "  2 assistant: Hi there",
        "0 older message(s)",
        "  1 you [2/2]: hello again",
        "  2 assistant: Hi there",
        "error: unknown command /nope; /help lists them",
        "bye",
    ]


def test_chat_with_bad_input_explains_and_goes_on(redis_url: str) -> None:
    channel = f"cli-{new_id()[:8]}"
    script = "/edit 9 nothing\n/select x\n/regen\n/edit\n/quit\n"
    result = ait_cli("chat", channel, redis=redis_url, stdin=script)
    assert result.returncode == 0, result.stderr
    assert "error: no messages yet" in result.stdout
    assert "usage: /select N K" in result.stdout
    assert "no answer to regenerate yet" in result.stdout
    assert "usage: /edit N new text" in result.stdout


def test_default_embedded_redis_is_started_shared_and_stopped(home: dict[str, str]) -> None:
    first = ait_cli("history", "demo", **home)
    assert first.returncode == 0, first.stderr
    assert "starting the embedded Redis" in first.stderr
    second = ait_cli("history", "demo", **home)
    assert "starting" not in second.stderr  # the same server, found on its socket
    again = ait_cli("redis", **home)
    assert again.returncode == 0 and "already running" in again.stdout
    stopped = ait_cli("redis", "--stop", **home)
    assert "stopped the embedded Redis" in stopped.stdout
    assert "no embedded Redis is running" in ait_cli("redis", "--stop", **home).stdout


def test_redis_command_runs_in_the_foreground_until_interrupted(home: dict[str, str]) -> None:
    with spawned("redis", **home) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "embedded Redis running at unix://" in line
        url = line.split("at ", 1)[1].strip()
        assert anyio.run(_ping, url)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in out


async def _ping(url: str) -> bool:
    async with ait.Bus.from_url(url) as bus:
        return bool(await bus.handle.client.ping())


@pytest.mark.slow
def test_agent_with_the_real_model_answers(redis_url: str) -> None:
    channel, pool = f"cli-{new_id()[:8]}", f"pool-{new_id()[:8]}"

    async def send() -> None:
        async with (
            ait.Bus.from_url(redis_url) as bus,
            ait.ClientSession(bus, channel, client_id="tester", pool=pool) as client,
        ):
            await client.view.send("Say hello.")

    anyio.run(send)
    result = ait_cli(
        "agent", "--model", "llama-cpp:smollm2?n_threads=1", "--max-tokens", "16",
        "--pool", pool, "--once", redis=redis_url, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "loading SmolLM2-135M-Instruct.Q4_1.gguf ... done" in result.stdout
    assert "tok/s" in result.stdout and "complete" in result.stdout.splitlines()[-1]
