"""`ait chat`: a terminal client. Type to send; every message on the channel shows as it streams.

/edit N TEXT     replace message N                 /branches        messages with alternatives
/regen [N]       another answer for answer N       /select N K      show alternative K of N
/older [N]       show N older messages             /show            print the conversation
/quit            leave (Ctrl-D too)                /help            this list

Messages are numbered as /show prints them; alternatives count from 1. Ctrl-C stops the
answer you wait for (or cancels your message while no agent has taken it); at the prompt
it clears what you typed, and leaves at an empty prompt.
"""

from __future__ import annotations

import argparse
import getpass
import signal
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
from anyio.abc import TaskStatus

from ..agent import AgentWorker
from ..client import ActiveRun, ClientSession
from ..conversation import Message
from ..errors import AitError, UsageError
from ..ids import check_name
from ._common import Style, ait_home, open_bus, resolve_redis
from ._terminal import Terminal
from ._transcript import Transcript
from .agent_cmd import load_provider, make_handler

__all__ = ["chat_command"]

HELP = __doc__.split("\n\n", 1)[1].rstrip() if __doc__ else ""
COMMANDS = ("/branches", "/edit", "/help", "/older", "/quit", "/regen", "/select", "/show")
#: Seconds Ctrl-C waits for the agent to confirm it stopped an answer, then the prompt.
STOP_WAIT = 2.0
#: Seconds without an agent taking a message before saying how to start one.
HINT_AFTER = 5.0


async def chat_command(args: argparse.Namespace) -> int:
    style = Style()
    check_name("channel", args.channel)  # before a model loads or a Redis starts
    client_id = args.client_id or getpass.getuser() or "user"
    provider = await load_provider(args.model, style) if args.model else None
    bus = await open_bus(resolve_redis(args.redis))
    status = 0
    try:
        async with anyio.create_task_group() as tg:
            worker = None
            if provider is not None:
                handler = make_handler(provider, system=None, max_tokens=512, style=None)
                worker = AgentWorker(bus, handler, pool=args.pool, concurrency=1)
                tg.start_soon(worker.run)
            terminal = Terminal(history=ait_home() / "chat_history", commands=COMMANDS)
            async with (
                terminal,
                ClientSession(
                    bus,
                    args.channel,
                    client_id=client_id,
                    pool=args.pool,
                    window=args.window,
                    on_error=lambda error: terminal.print(style.red(f"! {error}")),
                ) as session,
            ):
                status = await Chat(session, terminal, style).run()
            if worker is not None and status == 0:
                worker.stop()  # the runs in flight finish
            else:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await bus.aclose()
            if provider is not None:
                await provider.aclose()
    return status


class Chat:
    """The chat's loop: read a line, do what it says; Ctrl-C as the module docstring says."""

    def __init__(self, session: ClientSession, terminal: Terminal, style: Style) -> None:
        self.session = session
        self.view = session.view
        self.terminal = terminal
        self.style = style
        self.transcript = Transcript(self.view, terminal, style, client_id=session.client_id)
        self.status = 0
        self._mode: Literal["busy", "reading", "sending", "waiting", "stopping"] = "busy"
        self._scope: anyio.CancelScope | None = None  # what Ctrl-C stops now
        self._stop_when_sent = False  # Ctrl-C came while the write was being published
        self._main = anyio.CancelScope()

    async def run(self) -> int:
        """Chat until the user leaves; the exit status (130: interrupted while stopping)."""
        session = self.session
        self.terminal.print(
            self.style.dim(
                f"channel {session.channel.name} as {session.client_id}; /help for commands"
            )
        )
        self.transcript.render()
        with self._main:
            async with anyio.create_task_group() as tg:
                await tg.start(self._on_interrupts)
                tg.start_soon(self.transcript.follow)
                await self._loop()
                tg.cancel_scope.cancel()
        return self.status

    async def _loop(self) -> None:
        while True:
            self._mode = "reading"
            line = await self.terminal.read_line()
            self._mode = "busy"
            if line is None or line.strip() == "/quit":
                self.terminal.print("bye")
                return
            line = line.strip()
            if not line:
                continue
            with anyio.CancelScope() as self._scope:
                try:
                    await self._do(line)
                except AitError as exc:
                    self.terminal.print(self.style.red(f"error: {exc}"))
            if self._scope.cancelled_caught:
                self.terminal.print(self.style.dim("(interrupted)"))
            self._scope = None

    # -- Ctrl-C ------------------------------------------------------------------------------

    async def _on_interrupts(self, *, task_status: TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for received in signals:
                if received == signal.SIGTERM:  # leave the terminal as it was, too
                    self._leave("terminated", 128 + signal.SIGTERM)
                else:
                    self._interrupt()

    def _interrupt(self) -> None:
        if self._mode == "reading":
            if self.terminal.typed() and self.terminal.discard_typed():
                return
            self._leave("bye", 0)
        elif self._mode == "stopping":
            self._leave("interrupted: leaving before the agent confirmed the stop", 130)
        elif self._mode == "sending" and not self._stop_when_sent:
            self._stop_when_sent = True  # not half-published: stopped once it is out
        elif self._scope is not None:
            self._scope.cancel()
        else:
            self._leave("interrupted", 130)

    def _leave(self, message: str, status: int) -> None:
        self.terminal.close()
        self.terminal.print(message)
        self.status = status
        self._main.cancel()

    # -- writes and their answers ------------------------------------------------------------

    async def _do(self, line: str) -> None:
        if not line.startswith("/"):
            self.terminal.erase_echo()  # the transcript prints it, numbered
            await self._answer(lambda: self.view.send(line))
        else:
            command, _, rest = line.partition(" ")
            await self._command(command, rest.strip())

    async def _answer(self, write: Callable[[], Awaitable[ActiveRun]]) -> None:
        """Publish a write, then wait while the transcript prints its answer; Ctrl-C stops
        it."""
        self._mode, self._stop_when_sent = "sending", False
        active = await write()
        self._mode = "waiting"
        outer = self._scope
        with anyio.CancelScope() as waiting:
            self._scope = waiting
            if self._stop_when_sent:
                waiting.cancel()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._hint, active)
                info = await active.wait()
                tg.cancel_scope.cancel()
                self.transcript.update()
                if info.status == "error" and info.error is not None and not info.message_ids:
                    error = info.error
                    self.terminal.print(
                        self.style.red(f"    [error {error.code}: {error.message}]")
                    )
        self._scope = outer
        if waiting.cancel_called and not active.done:
            await self._stop(active)

    async def _stop(self, active: ActiveRun) -> None:
        self._mode = "stopping"
        await active.cancel()  # on the channel: an agent that takes the input later stops too
        if active.known_run_id is None:
            self.transcript.cancel_input(active.message_id)
            return
        terminal = self.terminal
        stopping = self.style.yellow(" [stopping]")
        if terminal.owner is not None:
            terminal.write(stopping, owner=terminal.owner)
        else:
            terminal.print(f"   {stopping}")
        with anyio.move_on_after(STOP_WAIT):
            await active.wait()
        self.transcript.update()
        if not active.done:
            terminal.print(
                self.style.dim(
                    "    (the agent has not stopped it yet: it will when it reads the cancel)"
                )
            )

    async def _hint(self, active: ActiveRun) -> None:
        await anyio.sleep(HINT_AFTER)
        if active.known_run_id is None:
            pool = self.session.pool
            option = "" if pool == "default" else f" --pool {pool}"
            self.terminal.print(
                self.style.dim(
                    "    (waiting for an agent: start one with "
                    f"`ait agent --model llama-cpp:smollm2{option}`; Ctrl-C cancels)"
                )
            )

    # -- commands ----------------------------------------------------------------------------

    async def _command(self, command: str, rest: str) -> None:
        view, terminal = self.view, self.terminal
        if command == "/help":
            for line in HELP.splitlines():
                terminal.print(line)
        elif command == "/show":
            self.transcript.render()
        elif command == "/edit":
            number, _, text = rest.partition(" ")
            if not number or not text.strip():
                raise UsageError("usage: /edit N new text")
            message = self._message(number)
            if message.run_id is not None:
                raise UsageError(
                    f"message {number} is an answer; /edit replaces a message sent to the "
                    f"assistant (/regen {number} asks for another answer)"
                )
            await self._answer(lambda: view.edit(message.id, text.strip()))
        elif command == "/regen":
            target = self._answer_to_redo(rest)
            await self._answer(lambda: view.regenerate(target))
        elif command == "/branches":
            found = False
            for number, message in enumerate(view.messages, 1):
                count = len(view.siblings(message.id))
                if count > 1:
                    found = True
                    shown = view.selected_index(message.id) + 1
                    terminal.print(f"message {number}: {count} alternatives, showing {shown}")
            if not found:
                terminal.print("no message has alternatives")
        elif command == "/select":
            number, _, which = rest.partition(" ")
            which = which.strip()
            if not number or not which.isdigit():
                raise UsageError("usage: /select N K (alternative K of message N)")
            message = self._message(number)
            count = len(view.siblings(message.id))
            if count < 2 and which != "1":
                raise UsageError(f"message {number} has no alternatives (/branches lists them)")
            if not 1 <= int(which) <= count:
                raise UsageError(f"message {number} has {count} alternatives; choose 1-{count}")
            view.select(message.id, int(which) - 1)
            self.transcript.render()
        elif command == "/older":
            with self.transcript.held():
                revealed = await view.load_older(int(rest) if rest.isdigit() else 10)
            terminal.print(self.style.dim(f"{revealed} older message(s)"))
            self.transcript.render()
        else:
            raise UsageError(f"unknown command {command}; /help lists them")

    def _message(self, number: str) -> Message:
        """Message `number`, as /show numbers them."""
        messages = self.view.messages
        if not messages:
            raise UsageError("no messages yet")
        if not number.isdigit() or not 1 <= int(number) <= len(messages):
            raise UsageError(f"no message {number}; choose 1-{len(messages)}")
        return messages[int(number) - 1]

    def _answer_to_redo(self, number: str) -> str:
        """The answer /regen N asks again: answer N, the answer to message N, or the last."""
        messages = self.view.messages
        if not number:
            answers = [m for m in messages if m.run_id is not None]
            if not answers:
                raise UsageError("no answer to regenerate yet")
            return answers[-1].id
        message = self._message(number)
        if message.run_id is not None:
            return message.id
        after = messages[int(number) :]
        if after and after[0].run_id is not None:
            run = self.view.tree.run(after[0].run_id)
            if run is not None and run.parent == message.id:
                return after[0].id
        raise UsageError(f"message {number} has no answer to regenerate yet")
