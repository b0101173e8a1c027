"""`ait chat` as a person uses it: under a real pseudo-terminal (pexpect), on the suite's
real redis-server. The agents are small Python agents run in a thread of this process, or
a scripted model inside a chat (`--model scripted:...`).

Python starts slowly on CI: the first prompt gets a generous timeout; what is measured (the
Ctrl-C latency) is measured from the keypress.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import anyio.from_thread
import pexpect
import pytest
from anyio.abc import TaskStatus

import ait
from ait.cli._terminal import _rows, _width
from ait.codec.chat import ChatCodec
from ait.ids import new_id

from .test_cli import env

STARTUP = 60.0  # seconds for a chat to start and show its prompt
TIMEOUT = 15.0  # seconds for anything else to show
PROMPT = "> "
UP = "\x1b[A"  # the up arrow, as a terminal sends it


@pytest.fixture
def ait_home(tmp_path: Path) -> str:
    """The chats' AIT_HOME: where their input history goes (never the user's)."""
    return str(tmp_path / "home")


@contextlib.contextmanager
def chat(
    redis_url: str, channel: str, client_id: str, ait_home: str, *args: str
) -> Iterator[pexpect.spawn]:
    """`ait chat` on a pseudo-terminal, at its first prompt; closed after the test."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ait", "chat", channel, "--client-id", client_id, "--redis", redis_url, *args],
        env=env(TERM="xterm", AIT_HOME=ait_home),
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(40, 120),
    )
    try:
        child.expect_exact(f"channel {channel} as {client_id}", timeout=STARTUP)
        child.expect_exact(PROMPT)
        yield child
    finally:
        child.close(force=True)


def leaves(child: pexpect.spawn, message: str, status: int) -> None:
    """The chat says `message` and exits with `status`."""
    child.expect_exact(message)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == status, child.before


Handler = Callable[[ait.Run], Awaitable[None]]


@contextlib.contextmanager
def agent(redis_url: str, pool: str, handler: Handler) -> Iterator[None]:
    """An agent worker answering `pool` with `handler`, in a thread, for the `with` block."""

    async def serve(*, task_status: TaskStatus[None]) -> None:
        async with ait.Bus.from_url(redis_url) as bus, anyio.create_task_group() as tg:
            tg.start_soon(ait.AgentWorker(bus, handler, pool=pool, concurrency=2).run)
            task_status.started()

    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        future, _ = portal.start_task(serve)
        try:
            yield
        finally:
            future.cancel()


async def words(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


def names() -> tuple[str, str]:
    """A channel and a pool no other test uses."""
    return f"chat-{new_id()[:8]}", f"pool-{new_id()[:8]}"


async def _channel_events(redis_url: str, channel: str) -> list[ait.Event]:
    async with ait.Bus.from_url(redis_url) as bus:
        return [event for _, event in await bus.channel(channel).read(count=1_000)]  # type: ignore[misc]


def test_others_messages_and_their_answers_appear_live_with_labels(
    redis_url: str, ait_home: str
) -> None:
    channel, pool = names()
    more = threading.Event()

    async def answer(run: ait.Run) -> None:
        await run.start()

        async def text() -> AsyncIterator[str]:
            yield "one"
            while not more.is_set():  # the answer waits here, half streamed
                await anyio.sleep(0.01)
            yield " two"

        result = await run.pipe(text())
        await run.end(result.reason)

    with (
        agent(redis_url, pool, answer),
        chat(redis_url, channel, "alice", ait_home, "--pool", pool) as alice,
        chat(redis_url, channel, "bob", ait_home, "--pool", pool) as bob,
    ):
        bob.send("draft")  # typed, not sent: it stays at bob's prompt, under what comes
        alice.send("hello\r")
        bob.expect_exact("  1 alice: hello")
        bob.expect_exact("  2 assistant (to alice): ")
        bob.expect_exact("one")  # while the answer is still streaming
        alice.expect_exact("  2 assistant: one")
        more.set()
        bob.expect_exact(" two")
        alice.expect_exact(" two")
        alice.expect_exact(PROMPT)
        bob.expect_exact(PROMPT + "draft")  # the prompt again, with what bob typed
        bob.send("\r")
        bob.expect_exact("  3 you: draft")
        bob.expect_exact("  4 assistant: one two")
        alice.expect_exact("  3 bob: draft")
        alice.expect_exact("  4 assistant (to bob): ")
        alice.expect_exact(" two")
        # Another answer to alice's message, asked by bob (so bob's run, answering bob):
        # alice's screen keeps its branch and says how to see it.
        bob.send("/regen 1\r")
        bob.expect_exact("  2 assistant [2/2]: one two")
        alice.expect_exact(
            "(bob added another answer as alternative 2 of message 2: /select 2 2 shows it)"
        )
        alice.send("/select 2 2\r")
        alice.expect_exact("  2 assistant (to bob) [2/2]: one two")


def test_a_bad_channel_name_fails_in_one_line(redis_url: str, ait_home: str) -> None:
    for name, reason in (("my chan", "has characters outside"), ("", "must not be empty")):
        child = pexpect.spawn(
            sys.executable,
            ["-m", "ait", "chat", name, "--redis", redis_url],
            env=env(TERM="xterm", AIT_HOME=ait_home),
            encoding="utf-8",
            timeout=STARTUP,
        )
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 2
        output = child.before.strip()
        assert output.startswith(f"ait: invalid channel name {name!r}: {reason}"), output
        assert "\n" not in output


def test_ctrl_c_without_an_agent_cancels_the_input_at_once(redis_url: str, ait_home: str) -> None:
    channel, pool = names()  # nobody serves the pool
    with chat(redis_url, channel, "alice", ait_home, "--pool", pool) as alice:
        alice.send("hello\r")
        alice.expect_exact("  1 you: hello")
        pressed = time.monotonic()
        alice.sendintr()
        alice.expect_exact("  1 you (cancelled): hello")
        alice.expect_exact(PROMPT)
        latency = time.monotonic() - pressed
        assert latency < 1.0, f"the prompt came back {latency:.2f} s after Ctrl-C"
        events = anyio.run(_channel_events, redis_url, channel)
        (sent,) = [e for e in events if isinstance(e, ait.Input)]
        cancels = [e for e in events if isinstance(e, ait.Cancel)]
        assert [c.input_message_id for c in cancels] == [sent.message_id]
        alice.send("/quit\r")  # the chat goes on, and /quit is heard
        leaves(alice, "bye", 0)


@contextlib.contextmanager
def stopping(redis_url: str, ait_home: str, handler: Handler) -> Iterator[pexpect.spawn]:
    """A chat whose answer (by `handler`, starting with "one") Ctrl-C is stopping."""
    channel, pool = names()
    with (
        agent(redis_url, pool, handler),
        chat(redis_url, channel, "alice", ait_home, "--pool", pool) as alice,
    ):
        alice.send("hello\r")
        alice.expect_exact("  2 assistant: one")
        alice.sendintr()
        alice.expect_exact("[stopping]")
        yield alice


def test_ctrl_c_stops_a_streaming_answer(redis_url: str, ait_home: str) -> None:
    async def answer(run: ait.Run) -> None:
        await run.start()
        provider = ait.testing.ScriptedProvider(["one"] + [" more"] * 500, delay=0.02)
        result = await run.pipe(provider.stream())
        await run.end(result.reason)

    with stopping(redis_url, ait_home, answer) as alice:
        alice.expect_exact("[cancelled]")
        alice.expect_exact(PROMPT)
        alice.send("/show\r")
        alice.expect(r"  2 assistant \(cancelled\): one( more)*\r\n")


def test_a_second_ctrl_c_while_stopping_leaves_with_130(redis_url: str, ait_home: str) -> None:
    async def deaf(run: ait.Run) -> None:  # starts, says something, never ends nor stops
        await run.start()
        await run.pipe(words("one"))
        await anyio.sleep_forever()

    with stopping(redis_url, ait_home, deaf) as alice:
        alice.sendintr()
        leaves(alice, "interrupted: leaving before the agent confirmed the stop", 130)


def test_ctrl_c_and_ctrl_d_at_the_prompt(redis_url: str, ait_home: str) -> None:
    channel, pool = names()
    with chat(redis_url, channel, "alice", ait_home, "--pool", pool) as alice:
        alice.send("not sent")
        alice.expect_exact("not sent")
        alice.sendintr()  # clears what was typed: it is not sent with the next line
        alice.send("/branches\r")
        alice.expect_exact("no message has alternatives")
        alice.expect_exact(PROMPT)
        alice.sendintr()  # at an empty prompt: leaves
        leaves(alice, "bye", 0)
    with chat(redis_url, channel, "alice", ait_home, "--pool", pool) as alice:
        alice.sendeof()
        leaves(alice, "bye", 0)
    with chat(redis_url, channel, "alice", ait_home, "--pool", pool) as alice:
        assert not alice.getecho()  # readline's, at the prompt
        alice.kill(signal.SIGTERM)
        alice.expect_exact("terminated")
        alice.expect(pexpect.EOF)
        assert alice.getecho()  # the terminal echoes again, as before the chat
        alice.close()
        assert alice.exitstatus == 143


def test_select_edit_and_regen_number_messages_as_shown(redis_url: str, ait_home: str) -> None:
    channel, pool = names()
    model = "scripted:Hi there"
    with chat(redis_url, channel, "alice", ait_home, "--pool", pool, "--model", model) as alice:

        def says(line: str, *expected: str) -> None:
            alice.send(line + "\r")
            for text in expected:
                alice.expect_exact(text)
            alice.expect_exact(PROMPT)

        says("hello", "  1 you: hello", "  2 assistant: Hi there")
        says("/regen", "  2 assistant [2/2]: Hi there")
        says("/select 2 1", "  1 you: hello", "  2 assistant [1/2]: Hi there")
        says("/select 2 3", "error: message 2 has 2 alternatives; choose 1-2")
        says("/select 2 0", "error: message 2 has 2 alternatives; choose 1-2")
        says("/select 1 2", "error: message 1 has no alternatives")
        says("/select 3 1", "error: no message 3; choose 1-2")
        says("/select 2", "error: usage: /select N K")
        says("/edit 2 bye", "error: message 2 is an answer")
        says("/edit 1 hello again", "  1 you [2/2]: hello again", "  2 assistant: Hi there")
        says("/regen 1", "  2 assistant [2/2]: Hi there")  # message 1's answer, again
        says("/regen 3", "error: no message 3; choose 1-2")
        says("/branches", "message 1: 2 alternatives, showing 2", "message 2: 2 alternatives")
        says("/select 1 1", "  1 you [1/2]: hello", "  2 assistant [1/2]: Hi there")


async def _publish_chain(redis_url: str, channel: str, count: int) -> None:
    """`count` messages of bob's, each after the one before."""
    events = [
        ait.Input(
            event_id=f"e{n}", message_id=f"m{n}", role="user", client_id="bob",
            parent=f"m{n - 1}" if n > 1 else None, payload=ChatCodec.user_text(f"note {n}."),
        )
        for n in range(1, count + 1)
    ]  # fmt: skip
    async with ait.Bus.from_url(redis_url) as bus:
        await bus.channel(channel).publish_many(events)


def test_older_messages_print_once_numbered_from_the_top(redis_url: str, ait_home: str) -> None:
    channel, pool = names()
    anyio.run(_publish_chain, redis_url, channel, 300)  # more than one page of history
    with chat(redis_url, channel, "alice", ait_home, "--pool", pool, "--window", "2") as alice:
        assert "older messages: /older" in alice.before
        assert "  1 bob: note 299." in alice.before and "  2 bob: note 300." in alice.before
        alice.send("/older 250\r")
        alice.expect_exact("250 older message(s)")
        assert "note" not in alice.before  # what /older revealed prints once, numbered anew
        alice.expect_exact("   ... older messages: /older")
        alice.expect_exact("  1 bob: note 49.")
        alice.expect_exact("252 bob: note 300.")
        alice.expect_exact(PROMPT)
        alice.send("/select 252 1\r")  # the numbers of what /older showed
        alice.expect_exact("252 bob: note 300.")


def test_line_editing_and_history(redis_url: str, ait_home: str) -> None:
    channel, pool = names()
    with chat(redis_url, channel, "alice", ait_home, "--pool", pool) as alice:
        alice.send("/branchez\x7fs\r")  # a typo, rubbed out
        alice.expect_exact("no message has alternatives")
        alice.expect_exact(PROMPT)
        alice.send(UP)  # the line before, again
        alice.expect_exact("/branches")
        alice.send("\r")
        alice.expect_exact("no message has alternatives")
        alice.send("/quit\r")
        leaves(alice, "bye", 0)
    history = Path(ait_home) / "chat_history"
    assert history.read_text().split() == ["/branches", "/quit"]
    with chat(redis_url, channel, "alice", ait_home, "--pool", pool) as alice:
        alice.send(UP + UP + "\r")  # the history of the chat before
        alice.expect_exact("no message has alternatives")
        alice.sendeof()
        leaves(alice, "bye", 0)


@pytest.mark.parametrize(
    ("text", "columns", "width", "rows"),
    [
        ("> hello", 80, 7, 1),
        ("> " + "x" * 78, 80, 80, 2),  # a full row: the cursor starts the next one
        ("> first\nsecond", 80, 6, 2),  # a pasted newline is a row break
        ("> 日本語", 80, 8, 1),  # wide characters take two columns
        ("> e\u0301", 80, 3, 1),  # a combining accent takes none
        ("\033[1myou\033[0m:\tx", 80, 9, 1),  # styles take none, a tab goes to column 8
    ],
)
def test_the_terminal_measures_what_it_writes(
    text: str, columns: int, width: int, rows: int
) -> None:
    assert _width(text) == width
    assert _rows(text, columns) == rows
