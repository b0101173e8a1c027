"""An agent worker that answers with OpenAI, or any OpenAI-compatible server.

What it shows: the same worker and handler as `local_llama_agent.py`, with the model behind
HTTP: `ait.providers.OpenAIProvider(model, base_url=..., api_key=...)` speaks the OpenAI
Chat Completions dialect to OpenAI itself and to every compatible server (llama.cpp's
`llama-server`, `python -m llama_cpp.server`, vLLM, gateways). The API key stays in this
process: clients never see it, they only talk to Redis.

Run it:

    OPENAI_API_KEY=sk-... python agent_examples/openai_agent.py --model gpt-4o-mini
    python agent_examples/openai_agent.py --base-url http://localhost:8080/v1 --model local \\
        --once --ask "Hi!"                                 # a local server; ask once, exit
    python agent_examples/openai_agent.py --scripted --once  # no server (tests, CI)

A spec string does the same: `ait.providers.from_spec("openai+http://localhost:8080/v1:local")`.
"""

from __future__ import annotations

import argparse
import os

import anyio

import ait
from ait.providers import ChatRequest, OpenAIProvider
from ait.testing import ScriptedProvider

SYSTEM = "You are a helpful assistant. Answer briefly."


def make_provider(args: argparse.Namespace) -> ait.providers.Provider:
    if args.scripted:
        return ScriptedProvider(lambda request: ["You said: ", request.messages[-1].text])
    # Retries (2 by default, before the first token only) and timeouts are built in; pass
    # retry=ait.providers.RetryPolicy(...) or timeout=... to change them.
    return OpenAIProvider(args.model, base_url=args.base_url, api_key=args.api_key)


async def main(args: argparse.Namespace) -> None:
    try:
        provider = make_provider(args)
    except ait.ProviderConfigError as exc:  # e.g. api.openai.com without a key
        raise SystemExit(f"openai_agent: {exc}") from None
    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus:
        where = "a scripted model" if args.scripted else f"{args.model} at {args.base_url}"
        print(f"agent: serving pool {args.pool!r} on {bus.url} with {where}", flush=True)
        worker: ait.AgentWorker

        async def answer(run: ait.Run) -> None:
            await run.start()
            messages = await run.load_conversation()
            request = ChatRequest.from_conversation(
                messages, system=SYSTEM, max_tokens=args.max_tokens
            )
            result = await run.pipe(provider.stream(request))
            if result.error is not None:  # a typed ait.ProviderError: status, timeout, ...
                print(f"agent: the provider failed: {result.error!r}", flush=True)
            await run.end(result.reason, error=result.error)  # the client sees the error too
            print(f"agent: answered run {run.run_id} ({result.reason})", flush=True)
            if args.once:
                worker.stop()

        worker = ait.AgentWorker(bus, answer, pool=args.pool, concurrency=args.concurrency)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            if args.ask:
                async with ait.ClientSession(
                    bus, args.channel, client_id="me", pool=args.pool
                ) as me:
                    active = await me.view.send(args.ask)
                    async for text in active.text_stream():
                        print(text, end="", flush=True)
                    info = await active.wait()  # the run as it ended
                    print(f" [{info.error.message}]" if info.error else "")
    await provider.aclose()  # closes the HTTP client


if __name__ == "__main__":
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=env("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--model", default=env("OPENAI_MODEL", "gpt-4o-mini"), help="model id")
    parser.add_argument(
        "--base-url", default=env("OPENAI_BASE_URL", "https://api.openai.com/v1"), help="API root"
    )
    parser.add_argument("--api-key", default=env("OPENAI_API_KEY"), help="the bearer token")
    parser.add_argument("--scripted", action="store_true", help="no server: scripted answers")
    parser.add_argument("--once", action="store_true", help="exit after answering one run")
    parser.add_argument("--pool", default="default", help="the worker pool to serve")
    parser.add_argument("--concurrency", type=int, default=8, help="runs at once")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--ask", metavar="TEXT", help="also send TEXT from a client here")
    parser.add_argument("--channel", default="demo", help="the channel --ask uses")
    try:
        anyio.run(main, parser.parse_args())
    except KeyboardInterrupt:  # runs in flight end with error `agent-shutdown`: clients see it
        pass
