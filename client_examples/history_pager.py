"""History paging: a client shows the newest messages first and loads older ones on demand.

What it shows: `ait.ClientSession(window=10)` reads only the newest history on enter
(enough for its view's window of 10 messages), then follows the channel live. Scrolling
up is `await view.load_older(10)`: it shows older messages already read, reading older
pages of the channel when it needs them, until `view.has_older` is False.

Run it (on an empty channel it first makes `--turns` question/answer turns with a
scripted agent; point it at your own channel to page through that instead):

    python client_examples/history_pager.py
    python client_examples/history_pager.py --channel chat --redis URL
"""

from __future__ import annotations

import argparse
import os

import anyio

import ait
from ait.providers import ChatRequest
from ait.testing import ScriptedProvider


async def fill(bus: ait.Bus, channel: str, turns: int) -> None:
    """Make `turns` turns: a question, a scripted answer."""
    provider = ScriptedProvider(lambda request: ["answer to ", request.messages[-1].text])

    async def answer(run: ait.Run) -> None:
        await run.start()
        request = ChatRequest.from_conversation(await run.load_conversation())
        result = await run.pipe(provider.stream(request))
        await run.end(result.reason)

    worker = ait.AgentWorker(bus, answer, pool="pager-demo")
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        async with ait.ClientSession(bus, channel, client_id="me", pool="pager-demo") as me:
            for number in range(1, turns + 1):
                await (await me.view.send(f"question {number}")).wait()
        worker.stop()


def show(number: int, messages: list[ait.Message], has_older: bool) -> None:
    print(f"page {number}: {len(messages)} messages (older ones left: {has_older})")
    for message in messages:
        print(f"    {message.role}: {message.text}")


async def main(args: argparse.Namespace) -> None:
    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus:
        if await bus.channel(args.channel).length() == 0:
            print(f"{args.channel} is empty: making {args.turns} turns first", flush=True)
            await fill(bus, args.channel, args.turns)
        # A client that joins late: it reads the newest history only. page_size is how many
        # entries one read fetches (small here so that paging reads Redis; 200 by default).
        client = ait.ClientSession(bus, args.channel, client_id="reader", window=10, page_size=20)
        async with client as me:
            view = me.view
            page = 1
            show(page, view.messages, view.has_older)  # the newest window
            while view.has_older:
                revealed = await view.load_older(10)  # may read older pages from Redis
                page += 1
                show(page, view.messages[:revealed], view.has_older)  # the newly shown ones
            print(f"all {len(view.messages)} messages shown, oldest first")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=os.environ.get("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--channel", default="pager-demo", help="the channel to page through")
    parser.add_argument("--turns", type=int, default=25, help="turns to make on an empty one")
    anyio.run(main, parser.parse_args())
