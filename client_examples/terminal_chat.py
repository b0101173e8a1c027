"""A minimal terminal chat: the smallest useful client UI (the full one is `ait chat`).

What it shows: a `ClientSession` and its view. A line you type is sent with `view.send`, its
answer streamed with `active.text_stream()`; Ctrl-C during an answer sends a cancel
(`active.cancel()`), Ctrl-D quits. `/edit N text` edits your message N (a new branch),
`/regen` answers the last message again (a sibling), `/branches` prints the branch with
[i/n] where a message has alternatives, `/older` shows older messages (`view.load_older`).

Run it (with an agent in this process, unless --no-agent):

    python client_examples/terminal_chat.py                         # SmolLM2 on llama.cpp
    python client_examples/terminal_chat.py --scripted              # a scripted agent (tests)
    python client_examples/terminal_chat.py --no-agent --redis URL  # agents elsewhere
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import anyio

import ait
from ait.providers import ChatRequest, from_spec
from ait.testing import ScriptedProvider


def scripted(request: ChatRequest) -> list[str]:
    """The scripted agent's answers: an echo; "count" counts slowly (to try Ctrl-C)."""
    text = request.messages[-1].text
    return [f"{n} " for n in range(1, 1001)] if text == "count" else ["You said: ", text]


async def stream(active: ait.ActiveRun) -> None:
    """Print an answer as it streams; the first Ctrl-C asks the agent to stop it."""
    print("assistant: ", end="", flush=True)
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def cancel_on_ctrl_c() -> None:
                async for _ in signals:
                    await active.cancel()  # a cancel event on the channel; the run ends
                    return

            tg.start_soon(cancel_on_ctrl_c)
            async for text in active.text_stream():
                print(text, end="", flush=True)
            tg.cancel_scope.cancel()
    info = await active.wait()
    print("" if info.status == "complete" else f" [{info.status}]", flush=True)


def show(view: ait.ClientView) -> None:
    """The selected branch, numbered; [i/n] where a message has alternatives."""
    if view.has_older:
        print("    ... older messages: /older")
    for number, message in enumerate(view.messages, 1):
        siblings = view.siblings(message.id)
        mark = f" [{view.selected_index(message.id) + 1}/{len(siblings)}]" if siblings[1:] else ""
        print(f"{number:>3} {message.role}{mark}: {message.text.strip()}")


async def chat(view: ait.ClientView) -> None:
    while True:
        if sys.stdin.isatty():
            print("> ", end="", flush=True)
        line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            return  # Ctrl-D, or the end of piped input
        command, _, rest = line.strip().partition(" ")
        try:
            if command == "/edit":  # /edit N new text
                number, _, text = rest.partition(" ")
                await stream(await view.edit(view.message_ids[int(number) - 1], text))
            elif command == "/regen":
                last = [m for m in view.messages if m.role == "assistant"][-1]
                await stream(await view.regenerate(last.id))
            elif command == "/branches":
                show(view)
            elif command == "/older":
                print(f"{await view.load_older(10)} older messages")
                show(view)
            elif line.strip():
                await stream(await view.send(line.strip()))
        except (ait.AitError, ValueError, IndexError) as exc:
            print(f"error: {exc}")


async def main(args: argparse.Namespace) -> None:
    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus, anyio.create_task_group() as tg:
        worker = None
        if not args.no_agent:  # an agent in this process: answer our own pool
            provider = (
                ScriptedProvider(scripted, delay=0.01) if args.scripted else from_spec(args.model)
            )

            async def answer(run: ait.Run) -> None:
                await run.start()
                request = ChatRequest.from_conversation(await run.load_conversation())
                result = await run.pipe(provider.stream(request))
                await run.end(result.reason, error=result.error)

            worker = ait.AgentWorker(bus, answer, pool=args.pool)
            tg.start_soon(worker.run)
        client = ait.ClientSession(bus, args.channel, client_id=args.client_id, pool=args.pool)
        async with client as session:
            print(f"channel {args.channel} as {args.client_id}; Ctrl-D quits")
            show(session.view)  # the history it loaded: the newest 50 messages (its window)
            await chat(session.view)
        if worker is not None:
            worker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=os.environ.get("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--model", default="llama-cpp:smollm2", help="the agent's provider spec")
    parser.add_argument("--scripted", action="store_true", help="a scripted agent, no model")
    parser.add_argument("--no-agent", action="store_true", help="rely on agents elsewhere")
    parser.add_argument("--channel", default="chat", help="the channel to chat on")
    parser.add_argument("--client-id", default=os.environ.get("USER") or "me", help="who you are")
    parser.add_argument("--pool", default="default", help="the worker pool to queue inputs for")
    try:
        anyio.run(main, parser.parse_args())
    except KeyboardInterrupt:
        pass  # Ctrl-C at the prompt: leave quietly
