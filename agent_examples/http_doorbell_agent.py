"""The HTTP doorbell: wake an agent with a POST instead of a worker queue.

What it shows, both sides in one program:
- the agent: a Starlette app with `POST /invoke`. The body is an `ait.Invocation` as JSON
  (which channel, which input); the endpoint answers 202 at once and, after the response,
  opens an `ait.AgentSession` on the channel, `create_run(invocation)`, and answers.
- the client: `ait.ClientSession(..., invoke=post_invocation)`: every write (send, edit,
  regenerate, tool result) calls `post_invocation(invocation)`, which POSTs it with httpx.
  The answer itself never goes through HTTP: it streams over Redis to every client.

Run it:

    python agent_examples/http_doorbell_agent.py                 # ask, then read stdin lines
    python agent_examples/http_doorbell_agent.py --once --ask "Hi"  # one question, then exit
    python agent_examples/http_doorbell_agent.py --scripted --once  # no model (tests, CI)

The app serves on 127.0.0.1 (`--port`, a free one by default) with uvicorn.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import ait
from ait.providers import ChatRequest, Provider, from_spec
from ait.testing import ScriptedProvider


def create_app(bus: ait.Bus, provider: Provider) -> Starlette:
    """The agent side: any web app can host this endpoint."""

    async def answer(invocation: ait.Invocation) -> None:
        # A session per invocation: it follows the channel (cancels!) while the run lasts;
        # leaving it ends a run still open with an error, so a crash is never silent.
        async with ait.AgentSession(bus, invocation.channel) as session:
            run = session.create_run(invocation)
            await run.start()
            request = ChatRequest.from_conversation(await run.load_conversation())
            result = await run.pipe(provider.stream(request))
            await run.end(result.reason, error=result.error)
            print(f"agent: answered run {run.run_id} ({result.reason})", flush=True)

    async def invoke(request: Request) -> JSONResponse:
        # A real deployment checks who is calling here (a shared secret, mTLS, ...).
        try:
            invocation = ait.Invocation.from_json(await request.body())
        except ait.CodecError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        print(f"agent: POST /invoke for input {invocation.input_event_id} -> 202", flush=True)
        # Answer after the response: the client's send() does not wait for the model.
        return JSONResponse({}, status_code=202, background=BackgroundTask(answer, invocation))

    return Starlette(routes=[Route("/invoke", invoke, methods=["POST"])])


async def main(args: argparse.Namespace) -> None:
    if args.scripted:
        provider = ScriptedProvider(lambda request: ["You said: ", request.messages[-1].text])
    else:
        provider = from_spec(args.model)
    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus, httpx.AsyncClient() as http, anyio.create_task_group() as tg:
        # Serve the app on a loopback socket we bind ourselves (port 0: any free port). It
        # listens from now on: requests wait in its backlog until uvicorn accepts them.
        sock = socket.create_server(("127.0.0.1", args.port))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/invoke"
        server = uvicorn.Server(uvicorn.Config(create_app(bus, provider), log_level="warning"))
        tg.start_soon(server.serve, [sock])
        print(f"agent: doorbell at {url}", flush=True)

        async def post_invocation(invocation: ait.Invocation) -> None:
            """The client side of the doorbell: ClientSession calls this after each write. If
            it raises, send() raises ait.InvokeFailed (the message is on the channel already;
            `await error.active_run.invoke()` rings again)."""
            response = await http.post(
                url, content=invocation.to_json(), headers={"content-type": "application/json"}
            )
            response.raise_for_status()

        async with ait.ClientSession(
            bus, args.channel, client_id="me", invoke=post_invocation
        ) as me:
            question: str | None = args.ask
            while question:
                active = await me.view.send(question)
                async for text in active.text_stream():
                    print(text, end="", flush=True)
                info = await active.wait()
                print(f"\nclient: run {info.run_id} ended: {info.status}", flush=True)
                if args.once:
                    break
                question = (await anyio.to_thread.run_sync(sys.stdin.readline)).strip()
        server.should_exit = True  # uvicorn stops serving; the task group then exits
    await provider.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=os.environ.get("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--model", default="llama-cpp:smollm2", help="provider spec")
    parser.add_argument("--scripted", action="store_true", help="no model: scripted answers")
    parser.add_argument("--once", action="store_true", help="exit after one question")
    parser.add_argument("--ask", default="Hello! Who are you?", help="the first question")
    parser.add_argument("--port", type=int, default=0, help="the app's port (0: a free one)")
    parser.add_argument("--channel", default="doorbell-demo", help="the channel to chat on")
    anyio.run(main, parser.parse_args())
