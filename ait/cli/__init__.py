"""The `ait` command: run Redis and agents, chat, watch and inspect channels.

    ait redis                        the embedded Redis in the foreground (prints its URL)
    ait agent --model SPEC           an agent worker answering a pool
    ait chat CHANNEL                 an interactive chat in the terminal
    ait tail CHANNEL                 events of a channel as they arrive
    ait history CHANNEL              the conversation tree of a channel
    ait serve [--model SPEC]         the web bridge (ait.web) and its chat page, for a local demo

Every command takes `--redis URL` (default: $AIT_REDIS_URL, else the embedded Redis that
`ait` starts in the background, persistent under ~/.ait/redis).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._common import run

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ait",
        description="Realtime, durable, branchable AI sessions over Redis Streams.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "--redis",
            metavar="URL",
            help="Redis URL (default: $AIT_REDIS_URL, else the embedded Redis)",
        )
        return p

    p = command("redis", "run the embedded Redis in the foreground and print its URL")
    p.add_argument("--data-dir", help="where to keep the data (default ~/.ait/redis)")
    p.add_argument("--stop", action="store_true", help="stop the background embedded Redis")

    p = command("agent", "run an agent worker: answer every input queued for a pool")
    p.add_argument(
        "--model",
        required=True,
        metavar="SPEC",
        help="provider spec: llama-cpp:smollm2, llama-cpp:/path.gguf?n_gpu_layers=-1, "
        "openai:gpt-4o-mini, openai+http://host:8080/v1:model, anthropic:claude-...",
    )
    p.add_argument("--pool", default="default", help="the worker pool to serve (default: default)")
    p.add_argument("--concurrency", type=int, default=2, help="runs at once (default 2)")
    p.add_argument("--system", metavar="PROMPT", help="a system prompt for every run")
    p.add_argument("--max-tokens", type=int, default=512, help="tokens per answer (default 512)")
    p.add_argument("--once", action="store_true", help="exit after answering one run")

    p = command("chat", "chat on a channel in the terminal (Ctrl-C stops an answer)")
    p.add_argument("channel")
    p.add_argument("--client-id", default=None, help="who you are (default: your user name)")
    p.add_argument("--pool", default="default", help="the pool to queue inputs for")
    p.add_argument("--model", metavar="SPEC", help="also run an agent in this process")
    p.add_argument("--window", type=int, default=20, help="messages shown at first")

    p = command("tail", "print a channel's events as they arrive")
    p.add_argument("channel")
    p.add_argument(
        "--from",
        dest="start",
        default="$",
        metavar="ID",
        help="start after this entry id (0-0: everything; default: new events only)",
    )
    p.add_argument("--raw", action="store_true", help="print the raw entry fields")
    p.add_argument("--count", type=int, default=None, help="exit after N entries")

    p = command("history", "print a channel's conversation: every branch, or the selected one")
    p.add_argument("channel")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--selected", action="store_true", help="only the selected branch")

    p = command("serve", "serve the web bridge and its chat page for a local demo")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--user", default=None, help="who local requests act as (your user name)")
    p.add_argument("--pool", default="default", help="the pool to queue inputs for")
    p.add_argument("--model", metavar="SPEC", help="also run an agent on the pool in this process")
    p.add_argument("--system", metavar="PROMPT", help="the agent's system prompt (with --model)")
    p.add_argument("--max-tokens", type=int, default=512, help="tokens per answer (default 512)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "redis":
        from .redis_cmd import redis_command

        return run(lambda: redis_command(args))
    if args.command == "agent":
        from .agent_cmd import agent_command

        return run(lambda: agent_command(args))
    if args.command == "chat":
        from .chat_cmd import chat_command

        return run(lambda: chat_command(args))
    if args.command == "tail":
        from .tail_cmd import tail_command

        return run(lambda: tail_command(args))
    if args.command == "serve":
        from .serve_cmd import serve_command

        return run(lambda: serve_command(args))
    from .history_cmd import history_command

    return run(lambda: history_command(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
