"""`ait chat`: a terminal client. Type to send; Ctrl-C stops the answer, not the chat.

/edit N TEXT     replace your message N        /branches        messages with alternatives
/regen [N]       answer message N again        /select N K      show alternative K of N
/older [N]       show N older messages         /show            print the conversation
/quit            leave (Ctrl-D too)            /help            this list
"""

from __future__ import annotations

import argparse
import getpass
import signal
import sys

import anyio
import anyio.to_thread

from ..agent import AgentWorker
from ..client import ActiveRun, ClientSession, ClientView
from ..conversation import Message
from ..errors import AitError, UsageError
from ._common import Style, fail, open_bus, resolve_redis
from .agent_cmd import load_provider, make_handler

__all__ = ["chat_command", "render"]

HELP = __doc__.split("\n\n", 1)[1].rstrip() if __doc__ else ""


def render(view: ClientView, style: Style) -> list[str]:
    """The shown branch, numbered, with `[i/n]` where a message has alternatives."""
    lines: list[str] = []
    if view.has_older:
        lines.append(style.dim("   ... older messages: /older"))
    for number, message in enumerate(view.messages, 1):
        lines.append(_line(view, number, message, style))
    return lines


def _line(view: ClientView, number: int, message: Message, style: Style) -> str:
    who = style.bold("you") if message.role == "user" else style.cyan(message.role)
    text = message.text.strip().replace("\n", " ") or style.dim("(no text yet)")
    siblings = view.siblings(message.id)
    marker = ""
    if len(siblings) > 1:
        marker = style.yellow(f" [{view.selected_index(message.id) + 1}/{len(siblings)}]")
    status = (
        "" if message.status in ("complete", "streaming") else style.dim(f" ({message.status})")
    )
    for part in message.parts:
        if part.type == "tool-call":
            text += style.dim(f" [tool {part.name}: {part.state}]")
    return f"{number:>3} {who}{marker}{status}: {text}"


async def chat_command(args: argparse.Namespace) -> int:
    style = Style()
    client_id = args.client_id or getpass.getuser() or "user"
    provider = await load_provider(args.model, style) if args.model else None
    bus = await open_bus(resolve_redis(args.redis))
    try:
        async with anyio.create_task_group() as tg:
            worker = None
            if provider is not None:
                handler = make_handler(provider, system=None, max_tokens=512, style=None)
                worker = AgentWorker(bus, handler, pool=args.pool, concurrency=1)
                tg.start_soon(worker.run)
            async with ClientSession(
                bus, args.channel, client_id=client_id, pool=args.pool, window=args.window
            ) as session:
                style.out(style.dim(f"channel {args.channel} as {client_id}; /help for commands"))
                for line in render(session.view, style):
                    style.out(line)
                await _loop(session, style)
            if worker is not None:
                worker.stop()
    except UsageError as exc:
        fail(str(exc), 2)
    except AitError as exc:
        fail(str(exc))
    finally:
        with anyio.CancelScope(shield=True):
            await bus.aclose()
            if provider is not None:
                await provider.aclose()
    return 0


async def _loop(session: ClientSession, style: Style) -> None:
    view = session.view
    while True:
        line = await _read_line("> " if style.enabled else "")
        if line is None:
            return
        line = line.strip()
        if not line:
            continue
        try:
            if not line.startswith("/"):
                await _stream(await view.send(line), view, style)
                continue
            command, _, rest = line.partition(" ")
            if command == "/quit":
                return
            await _command(command, rest.strip(), view, style)
        except (UsageError, ValueError) as exc:
            style.out(style.red(f"error: {exc}"))
        except AitError as exc:
            style.out(style.red(f"error: {exc}"))


async def _command(command: str, rest: str, view: ClientView, style: Style) -> None:
    ids = view.message_ids
    if command == "/help":
        style.out(HELP)
    elif command == "/show":
        for text in render(view, style):
            style.out(text)
    elif command == "/edit":
        number, _, text = rest.partition(" ")
        if not text:
            raise UsageError("usage: /edit N new text")
        await _stream(await view.edit(_pick(ids, number), text), view, style, show=True)
    elif command == "/regen":
        if rest:
            target = _pick(ids, rest)
        else:
            answers = [m.id for m in view.messages if m.role == "assistant"]
            if not answers:
                raise UsageError("no answer to regenerate yet")
            target = answers[-1]
        await _stream(await view.regenerate(target), view, style, show=True)
    elif command == "/branches":
        found = False
        for number, mid in enumerate(ids, 1):
            siblings = view.siblings(mid)
            if len(siblings) > 1:
                found = True
                shown = view.selected_index(mid) + 1
                style.out(f"message {number}: {len(siblings)} alternatives, showing {shown}")
        if not found:
            style.out("no message has alternatives")
    elif command == "/select":
        number, _, which = rest.partition(" ")
        if not which.isdigit():
            raise UsageError("usage: /select N K (alternative K of message N)")
        view.select(_pick(ids, number), int(which) - 1)
        for text in render(view, style):
            style.out(text)
    elif command == "/older":
        count = int(rest) if rest.isdigit() else 10
        revealed = await view.load_older(count)
        style.out(style.dim(f"{revealed} older message(s)"))
        for text in render(view, style):
            style.out(text)
    else:
        raise UsageError(f"unknown command {command}; /help lists them")


def _pick(ids: list[str], number: str) -> str:
    if not number.isdigit() or not 1 <= int(number) <= len(ids):
        raise UsageError(f"no message {number!r}: pick 1 to {len(ids)}")
    return ids[int(number) - 1]


async def _stream(active: ActiveRun, view: ClientView, style: Style, *, show: bool = False) -> None:
    """Print the run's answer as it streams; Ctrl-C asks the agent to stop it."""
    style.out(style.cyan("assistant: "), end="")
    async with anyio.create_task_group() as tg:

        async def cancel_on_ctrl_c() -> None:
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    style.out(style.yellow(" [stopping]"), end="")
                    await active.cancel()
                    return

        async def hint_if_no_agent() -> None:
            await anyio.sleep(5)
            if active.known_run_id is None:
                style.out(style.dim(
                    "\n(waiting for an agent: start one with `ait agent --model llama-cpp:smollm2`)"
                ), end="")  # fmt: skip

        tg.start_soon(cancel_on_ctrl_c)
        tg.start_soon(hint_if_no_agent)
        async for text in active.text_stream():
            style.out(text, end="")
        tg.cancel_scope.cancel()
    info = await active.wait()
    if info.status == "error" and info.error is not None:
        style.out(style.red(f" [error {info.error.code}: {info.error.message}]"))
    elif info.status != "complete":
        style.out(style.dim(f" [{info.status}]"))
    else:
        style.out()
    if show:  # the branch changed: show where we are
        for line in render(view, style):
            style.out(line)


async def _read_line(prompt: str) -> str | None:
    def read() -> str | None:
        if prompt:
            sys.stdout.write(prompt)
            sys.stdout.flush()
        line = sys.stdin.readline()
        return line if line else None

    return await anyio.to_thread.run_sync(read, abandon_on_cancel=True)
