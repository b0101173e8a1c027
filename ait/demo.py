"""The demo: a live, branching, cancellable conversation with a local model.

Run it with `scripts/demo` (or `python -m ait.demo`). On the embedded Redis that every `ait`
command shares, it starts an agent worker on SmolLM2 (a 135M model from PyPI) and plays a
scripted conversation on channel `demo`: streaming tokens, a second client watching live,
a cancel mid-answer, a regeneration and switching between the branches, an edit, and a
client that comes back and finds everything. Then it tells how to go on with `ait chat`.

`scripts/demo --web` (`python -m ait.demo --web [--port N]`) instead serves the chat page:
`ait serve --model llama-cpp:smollm2?n_threads=2` on the same embedded Redis, with an agent
in the process; open the URL it prints.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import anyio

from .agent import AgentWorker
from .bus import Bus
from .bus.embedded import answers_ping
from .cli._common import Style, default_data_dir, default_socket, resolve_redis
from .cli.agent_cmd import load_provider, make_handler
from .cli.history_cmd import tree_lines
from .client import ActiveRun, ClientSession, ClientView
from .conversation import ViewChange

CHANNEL = "demo"
POOL = "demo"
MODEL = "llama-cpp:smollm2?n_threads=2&n_ctx=2048"
WEB_MODEL = "llama-cpp:smollm2?n_threads=2"

style = Style()


def say(text: str = "") -> None:
    style.out(text)


def step(title: str) -> None:
    say()
    say(style.bold(f"== {title}"))


async def stream(active: ActiveRun, *, stop_after: int | None = None) -> str:
    """Print the answer as it streams; optionally cancel it after some pieces."""
    style.out(style.cyan("   assistant: "), end="")
    pieces = 0
    async for text in active.text_stream():
        style.out(text, end="")
        pieces += 1
        if stop_after is not None and pieces == stop_after:
            await active.cancel()
            style.out(style.yellow(" [cancel sent]"), end="")
    info = await active.wait()
    if info.status != "complete":
        style.out(style.yellow(f" [{info.status}]"), end="")
    say()
    return info.status


def show(view: ClientView, title: str) -> None:
    say(style.dim(f"   {title}:"))
    for number, message in enumerate(view.messages, 1):
        siblings = view.siblings(message.id)
        marker = ""
        if len(siblings) > 1:
            marker = style.yellow(f" [{view.selected_index(message.id) + 1}/{len(siblings)}]")
        text = message.text.strip().replace("\n", " ")
        if len(text) > 90:
            text = text[:87] + "..."
        say(f"   {number:>2} {message.role:<9}{marker} {style.dim(f'({message.status})')} {text}")


async def main() -> int:
    began = time.monotonic()
    say(style.bold("ait demo: realtime, durable, branchable AI sessions over Redis Streams"))
    was_running = answers_ping(default_socket())
    url = resolve_redis(None)
    say(f"Redis: {url}")
    provider = await load_provider(MODEL, style)
    async with Bus.from_url(url) as bus:
        # A fresh conversation each time the demo runs.
        channel = bus.channel(CHANNEL)
        await bus.handle.client.delete(channel.key, channel.key_for("active"))
        handler = make_handler(provider, system="Answer briefly.", max_tokens=48, style=None)
        worker = AgentWorker(bus, handler, pool=POOL, concurrency=2)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await play(bus)
            worker.stop()
    await provider.aclose()
    ait = ait_command()
    step("Go on yourself")
    say(f"   {ait} chat {CHANNEL} --model llama-cpp:smollm2   chat here (an agent runs inside)")
    say(f"   {ait} history {CHANNEL}                          every branch of it")
    say(f"   {ait} tail {CHANNEL} --from 0-0                   every event on the channel")
    say()
    if url != f"unix://{default_socket()}":
        say(f"The conversation stays in the Redis at {url}; the demo started no server.")
    elif was_running:
        say(f"The embedded Redis was running before the demo and goes on running ({url}).")
        say(f"Stop it with: {ait} redis --stop")
    else:
        say(f"The embedded Redis the demo started goes on running in the background ({url},")
        say(f"data in {default_data_dir()}), so that the commands above find the conversation.")
        say(f"Stop it with: {ait} redis --stop")
    say(style.dim(f"demo finished in {time.monotonic() - began:.0f} s"))
    return 0


def ait_command() -> str:
    """How to type the `ait` command from here: `ait` when it is on PATH, else its path."""
    installed = os.path.join(os.path.dirname(sys.executable), "ait")
    on_path = shutil.which("ait")
    if on_path and os.path.realpath(on_path) == os.path.realpath(installed):
        return "ait"
    if not os.path.exists(installed):
        return f"{os.path.basename(sys.executable)} -m ait"
    relative = os.path.relpath(installed)
    return relative if not relative.startswith("..") else installed


async def play(bus: Bus) -> None:
    async with (
        ClientSession(bus, CHANNEL, client_id="alice", pool=POOL) as alice,
        ClientSession(bus, CHANNEL, client_id="bob", pool=POOL) as bob,
    ):
        seen: list[ViewChange] = []
        bob.view.on_change(seen.append)

        step("1. alice asks; the answer streams token by token (bob watches the same channel)")
        say(f"   alice: {style.bold('What is Redis? One sentence.')}")
        await stream(await alice.view.send("What is Redis? One sentence."))
        show(bob.view, "bob's view")
        say(style.dim(f"   bob's view changed {len(seen)} times while the answer streamed"))

        step("2. alice asks for something long and stops it mid-answer")
        say(f"   alice: {style.bold('Tell me a long story about a lighthouse keeper.')}")
        await stream(
            await alice.view.send("Tell me a long story about a lighthouse keeper."), stop_after=12
        )
        say(style.dim("   the partial answer stays, marked cancelled"))

        step("3. alice regenerates the first answer: a second branch")
        first_answer = alice.view.messages[1]
        await stream(await alice.view.regenerate(first_answer.id))
        show(alice.view, "alice's view (her regeneration is selected)")
        show(bob.view, "bob's view (stays on the branch he was reading)")

        step("4. alice switches back to the first branch")
        answer_now = alice.view.messages[1]
        alice.view.select(answer_now.id, 0)
        show(alice.view, "alice's view")

        step("5. alice edits her first question: another branch, with its own answer")
        question = alice.view.messages[0]
        say(
            f"   alice edits message 1 to: {style.bold('What is a stream in Redis? One sentence.')}"
        )
        await stream(await alice.view.edit(question.id, "What is a stream in Redis? One sentence."))
        show(alice.view, "alice's view")

    step("6. a client reconnects and finds the whole conversation")
    async with ClientSession(bus, CHANNEL, client_id="alice-again", pool=POOL) as again:
        say(style.dim("   every branch (* = what a fresh view shows: the newest of each):"))
        for line in tree_lines(again.tree, again.view, style):
            say(f"   {line}")


def web(port: int) -> int:
    """The chat page: `ait serve --model` on the embedded Redis, until Ctrl-C."""
    from .cli import main as ait_main

    url = resolve_redis(None)
    say(style.bold("ait demo --web: the chat page, with SmolLM2 answering in this process"))
    say(f"Redis: {url}")
    say(f"Open {style.bold(f'http://127.0.0.1:{port}/#{CHANNEL}-web')} in a browser (two tabs stay")
    say("in sync); name more conversations on the left. Ctrl-C stops the server.")
    return ait_main(
        ["serve", "--redis", url, "--port", str(port), "--model", WEB_MODEL,
         "--system", "Answer briefly.", "--max-tokens", "256"]
    )  # fmt: skip


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description="the ait demo")
    parser.add_argument("--web", action="store_true", help="serve the chat page instead")
    parser.add_argument("--port", type=int, default=8000, help="the page's port (with --web)")
    args = parser.parse_args(argv)
    if args.web:
        return web(args.port)
    return anyio.run(main)


if __name__ == "__main__":
    sys.exit(cli())
