"""Branches: build a conversation with an edit and a regeneration, then print every branch.

What it shows: a channel keeps every alternative. `view.regenerate(answer_id)` asks for a
sibling answer; `view.edit(message_id, text)` makes a sibling of your message (a new
branch from there). A view shows one branch: `view.siblings(id)` lists a message's
alternatives, `view.selected_index(id)` says which one it shows, `view.select(id, i)`
switches. Selecting each alternative in turn walks every branch.

Run it (on an empty channel it first builds the conversation, with an agent here):

    python client_examples/branch_explorer.py --scripted     # a scripted agent (tests, CI)
    python client_examples/branch_explorer.py                # SmolLM2 answers
    python client_examples/branch_explorer.py --channel chat --redis URL  # explore yours
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Iterator

import anyio

import ait
from ait.providers import ChatRequest, from_spec
from ait.testing import ScriptedProvider


async def build(view: ait.ClientView) -> None:
    """Ask, regenerate the answer, follow up, then edit the first question."""
    await (await view.send("What is a branch?")).wait()
    first_answer = view.messages[-1]
    await (await view.regenerate(first_answer.id)).wait()  # the view selects the new answer
    await (await view.send("And a tree?")).wait()  # continues the regenerated branch
    await (await view.edit(view.messages[0].id, "What is a leaf?")).wait()  # a new branch


def branches(view: ait.ClientView, start: int = 0) -> Iterator[list[ait.Message]]:
    """Every branch from message `start` on: select each alternative in turn, depth first."""
    messages = view.messages
    for position in range(start, len(messages)):
        message_id = messages[position].id
        alternatives = len(view.siblings(message_id))
        if alternatives > 1:
            shown = view.selected_index(message_id)
            for index in range(alternatives):
                view.select(message_id, index)  # any member of the sibling group names it
                view.reveal_older(len(view.tree))  # show the branch whole, not only a window
                yield from branches(view, position + 1)
            view.select(message_id, shown)  # put the view back as it was
            return
    yield messages


def line(view: ait.ClientView, message: ait.Message) -> str:
    alternatives = len(view.siblings(message.id))
    mark = f" [{view.selected_index(message.id) + 1}/{alternatives}]" if alternatives > 1 else ""
    return f"    {message.role}{mark}: {message.text.strip()[:70]}"


async def main(args: argparse.Namespace) -> None:
    counter = itertools.count(1)
    provider = (
        ScriptedProvider(lambda r: [f"answer {next(counter)} to '{r.messages[-1].text}'"])
        if args.scripted
        else from_spec(args.model)
    )

    async def answer(run: ait.Run) -> None:
        await run.start()
        messages = await run.load_conversation()  # the run's own branch only
        request = ChatRequest.from_conversation(messages, max_tokens=48)
        result = await run.pipe(provider.stream(request))
        await run.end(result.reason, error=result.error)

    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus, anyio.create_task_group() as tg:
        worker = ait.AgentWorker(bus, answer, pool=args.pool)
        tg.start_soon(worker.run)
        async with ait.ClientSession(bus, args.channel, client_id="me", pool=args.pool) as me:
            view = me.view
            if not view.messages:
                await build(view)
            while view.has_older:  # a long conversation: read all of it first
                await view.load_older(100)
            for number, branch in enumerate(branches(view), 1):
                print(f"branch {number}:")
                for message in branch:
                    print(line(view, message))
            print("the view shows:")
            for message in view.messages:
                print(line(view, message))
        worker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=os.environ.get("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--model", default="llama-cpp:smollm2", help="the agent's provider spec")
    parser.add_argument("--scripted", action="store_true", help="a scripted agent, no model")
    parser.add_argument("--channel", default="branches-demo", help="the channel to explore")
    parser.add_argument("--pool", default="branches-demo", help="the worker pool")
    anyio.run(main, parser.parse_args())
