"""A tool-calling agent whose tool runs on the CLIENT (the user's machine), not the agent's.

What it shows, both sides in one program:
1. the client sends a question; the model answers with a call to tool `list_files`. The
   agent pipes the model's stream (the call becomes a `tool-call` part of its message) and
   `run.suspend()`s: the run waits on the channel, no worker holds it;
2. the client sees the tool-call part in its view, runs the tool locally, and answers with
   `view.send_tool_results({call_id: output})`;
3. that input resumes the same run (same run id; `run.resumed` is True): its
   `load_conversation()` holds the result, and the model answers from it.

Run it in a folder whose files it may list (`--once`: one question, else read more):

    python agent_examples/tool_agent.py --scripted --once   # a scripted model (tests, CI)
    python agent_examples/tool_agent.py --model 'openai+http://localhost:8080/v1:local'

A real model needs tool support (a capable model behind an OpenAI-compatible server, or
llama-cpp with `?chat_format=chatml-function-calling`); a tiny one may answer in text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio

import ait
from ait.providers import ChatRequest, Finish, TextDelta, Tool, ToolCallEnd, from_spec

FOLDER = {"type": "object", "properties": {"folder": {"type": "string"}}}
TOOLS = [Tool(name="list_files", description="List the files in a folder of the user's machine.",
              parameters=FOLDER)]  # fmt: skip


def list_files(folder: str = ".") -> list[str]:
    """The tool, run by the client."""
    return sorted(os.listdir(folder))


class ScriptedModel:
    """--scripted: a deterministic stand-in for a tool-capable model, written as a Provider
    (ait.testing.ScriptedProvider plays text only). It calls the tool, then answers from its
    result: the events a real provider streams."""

    name = "scripted"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ait.providers.ProviderEvent]:
        last = request.messages[-1]
        if last.role == "tool":  # the tool's result came back: answer from it
            files = json.loads(last.text)
            yield TextDelta(text=f"Your folder holds {len(files)} files: {', '.join(files)}.")
        else:
            call_id = f"call-{len(request.messages)}"  # unique in the conversation
            yield ToolCallEnd(id=call_id, name="list_files", arguments={"folder": "."})
        yield Finish(reason="stop")

    async def aclose(self) -> None: ...


async def main(args: argparse.Namespace) -> None:
    provider = ScriptedModel() if args.scripted else from_spec(args.model)

    async def handle(run: ait.Run) -> None:
        """The agent: the same handler starts the run and resumes it."""
        await run.start()
        if run.resumed:
            print(f"agent: run {run.run_id} resumed with the tool's result", flush=True)
        messages = await run.load_conversation()  # for a resumed run: the tool result too
        request = ChatRequest.from_conversation(messages, tools=TOOLS, max_tokens=256)
        calls: list[ToolCallEnd] = []

        async def noting_calls(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for event in stream:
                if isinstance(event, ToolCallEnd):
                    calls.append(event)
                yield event

        result = await run.pipe(noting_calls(provider.stream(request)))
        if result.reason == "complete" and calls:
            print(f"agent: run {run.run_id} calls {calls[0].name}, suspends", flush=True)
            await run.suspend()  # ends this invocation; the tool result starts the next one
        else:
            await run.end(result.reason, error=result.error)

    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus, anyio.create_task_group() as tg:
        worker = ait.AgentWorker(bus, handle, pool=args.pool)
        tg.start_soon(worker.run)
        async with ait.ClientSession(bus, args.channel, client_id="me", pool=args.pool) as me:
            question = args.ask
            while question:
                await converse(me.view, question)
                if args.once:
                    break
                question = (await anyio.to_thread.run_sync(sys.stdin.readline)).strip()
        worker.stop()
    await provider.aclose()


async def converse(view: ait.ClientView, question: str) -> None:
    """The client: send, print the answer, run the tools the run waits for, repeat."""
    active = await view.send(question)
    while True:
        async for text in active.text_stream():
            print(text, end="", flush=True)
        info = await active.wait()  # the run ended, or suspended to wait for us
        if info.status != "suspended":
            break
        # The calls the run waits for: the tool-call parts of its last message without a
        # result yet (a model may call several tools at once; they are answered together).
        (asking,) = [m for m in view.messages if m.id == info.message_ids[-1]]
        calls = [part for part in asking.parts
                 if part.type == "tool-call" and part.state == "input-available"]  # fmt: skip
        outputs = {}
        for call in calls:
            outputs[call.id] = list_files(**call.input)
            print(f"client: ran {call.name}({call.input}) here: {outputs[call.id]}", flush=True)
        active = await view.send_tool_results(outputs)
        print(f"client: resumed run {await active.run_id}", flush=True)
    print(f"\nclient: run {info.run_id} ended: {info.status}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=os.environ.get("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--model", default="llama-cpp:smollm2", help="provider spec")
    parser.add_argument("--scripted", action="store_true", help="a scripted model")
    parser.add_argument("--once", action="store_true", help="one question, then exit")
    parser.add_argument("--ask", default="Which files are in my folder?")
    parser.add_argument("--pool", default="tool-demo", help="the worker pool")
    parser.add_argument("--channel", default="tool-demo", help="the channel to chat on")
    anyio.run(main, parser.parse_args())
