"""Human approval: the agent asks before it runs a dangerous tool, and waits for the answer.

What it shows, both sides in one program:
1. the model wants to call `delete_file`. The agent passes the call on and adds a
   `tool-approval-request` for it, then `run.suspend()`s;
2. the client sees the request (`part.approval == "requested"`), asks its human, and
   answers with `view.approve(call_id, approved, reason=...)`;
3. that resumes the same run: the agent runs the tool only if approved, records its result
   on the call (`run.pipe(..., message_id=<the message holding the call>)`), and answers.

Run it (the files live in a temporary sandbox folder; nothing of yours is deleted):

    python agent_examples/approval_agent.py --scripted               # asks you: y/n
    python agent_examples/approval_agent.py --scripted --once --decision deny --reason "keep it"

A real model (`--model SPEC`) needs tool support; see tool_agent.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

import ait
from ait.providers import ChatRequest, Finish, Tool, ToolCallEnd, from_spec

PATH = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
TOOLS = [Tool(name="delete_file", description="Delete a file.", parameters=PATH)]
SANDBOX = Path(tempfile.mkdtemp(prefix="approval-demo-"))


class ScriptedModel:
    """--scripted: a deterministic stand-in for a tool-capable model, written as a Provider
    (ait.testing.ScriptedProvider plays text only): it wants to delete old-notes.txt."""

    name = "scripted"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ait.providers.ProviderEvent]:
        call_id = f"call-{len(request.messages)}"  # unique in the conversation
        yield ToolCallEnd(id=call_id, name="delete_file", arguments={"path": "old-notes.txt"})
        yield Finish(reason="tool_calls")

    async def aclose(self) -> None: ...


async def handle(run: ait.Run, provider: ait.providers.Provider) -> None:
    """The agent: ask the model; hold its tool calls for approval; run them once approved."""
    await run.start()
    messages = await run.load_conversation()
    if not run.resumed:
        request = ChatRequest.from_conversation(messages, tools=TOOLS, max_tokens=256)
        asked: list[str] = []

        async def asking_approval(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for event in stream:
                yield event  # the model's event (text, a tool call) as it is
                if isinstance(event, ToolCallEnd):
                    asked.append(event.id)
                    yield {"type": "tool-approval-request", "id": event.id}

        result = await run.pipe(asking_approval(provider.stream(request)))
        if result.reason == "complete" and asked:
            print(f"agent: run {run.run_id} asks approval and suspends", flush=True)
            await run.suspend()  # the answer to the request starts the next invocation
        else:
            await run.end(result.reason, error=result.error)
        return
    # Resumed by the human's answer: it amended the message that holds the call.
    asking = messages[-1]
    (call,) = [p for p in asking.parts if p.type == "tool-call" and p.approval]
    print(f"agent: run {run.run_id} resumed: the call was {call.approval}", flush=True)
    name = Path(call.input["path"]).name  # a model's input is untrusted: stay in the sandbox
    if call.approval == "approved":
        (SANDBOX / name).unlink(missing_ok=True)
        done = {"type": "tool-output-available", "id": call.id, "output": "deleted"}
        await run.pipe(one(done), message_id=asking.id)  # the result goes with its call
        answer = f"Deleted {name}."
    else:
        answer = f"OK, I kept {name} ({call.approval_reason or 'no reason'})."
    result = await run.pipe(one(answer))
    await run.end(result.reason, error=result.error)


async def one(item: Any) -> AsyncIterator[Any]:
    yield item


async def converse(view: ait.ClientView, question: str, args: argparse.Namespace) -> None:
    """The client: send; when the run waits for approval, ask the human; show the answer."""
    active = await view.send(question)
    while True:
        async for text in active.text_stream():
            print(text, end="", flush=True)
        info = await active.wait()
        if info.status != "suspended":
            break
        (call,) = [p for p in view.messages[-1].parts if p.type == "tool-call" and p.approval]
        if args.decision == "ask":
            prompt = f"approve {call.name}({call.input})? [y/N] "
            yes = (await anyio.to_thread.run_sync(input, prompt)).strip().lower() == "y"
        else:
            yes = args.decision == "approve"
        print(f"client: {'approved' if yes else 'denied'} {call.name}", flush=True)
        active = await view.approve(call.id, yes, reason=None if yes else args.reason)
    print(f"\nclient: run {info.run_id} ended: {info.status}", flush=True)


async def main(args: argparse.Namespace) -> None:
    (SANDBOX / "old-notes.txt").write_text("old notes\n")
    (SANDBOX / "todo.txt").write_text("buy milk\n")
    provider = ScriptedModel() if args.scripted else from_spec(args.model)
    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus, anyio.create_task_group() as tg:
        worker = ait.AgentWorker(bus, lambda run: handle(run, provider), pool=args.pool)
        tg.start_soon(worker.run)
        async with ait.ClientSession(bus, args.channel, client_id="me", pool=args.pool) as me:
            question = args.ask
            while question:
                await converse(me.view, question, args)
                print(f"sandbox: {sorted(os.listdir(SANDBOX))}", flush=True)
                if args.once:
                    break
                question = (await anyio.to_thread.run_sync(sys.stdin.readline)).strip()
        worker.stop()
    shutil.rmtree(SANDBOX)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=os.environ.get("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--model", default="llama-cpp:smollm2", help="provider spec")
    parser.add_argument("--scripted", action="store_true", help="a scripted model")
    parser.add_argument("--once", action="store_true", help="one question, then exit")
    parser.add_argument("--decision", choices=["ask", "approve", "deny"], default="ask")
    parser.add_argument("--reason", default="I still need it", help="the reason of a denial")
    parser.add_argument("--ask", default="Clean up my old notes, please.")
    parser.add_argument("--pool", default="approval-demo", help="the worker pool")
    parser.add_argument("--channel", default="approval-demo", help="the channel to chat on")
    anyio.run(main, parser.parse_args())
