"""`ait history`: the conversation of a channel: every branch as a tree, or the selected one."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..conversation import Message, Tree, View
from ..errors import AitError, InvalidName
from ._common import Style, fail, open_bus, resolve_redis

__all__ = ["history_command", "tree_lines"]

PAGE = 1_000


async def history_command(args: argparse.Namespace) -> int:
    style = Style()
    progress = Style(sys.stderr)
    bus = await open_bus(resolve_redis(args.redis))
    try:
        try:
            channel = bus.channel(args.channel)
        except InvalidName as exc:
            fail(str(exc), 2)
        tree = Tree(
            on_error=lambda error: progress.out(progress.red(f"! {error.entry_id}: {error.reason}"))
        )
        after, read = "0-0", 0
        while True:
            page = await channel.read(after=after, count=PAGE)
            tree.apply(page)
            read += len(page)
            if progress.enabled and read >= PAGE:
                progress.out(f"\rreading history ... {read:,} entries", end="")
            if len(page) < PAGE:
                break
            after = page[-1][0]
        if progress.enabled and read >= PAGE:
            progress.out()
        tree.history_complete = True
    except AitError as exc:
        fail(str(exc))
    finally:
        await bus.aclose()
    view = View(tree, window=max(len(tree), 1))
    if args.json:
        messages = view.messages if args.selected else _all(tree)
        document = {
            "channel": args.channel,
            "entries": read,
            "messages": [_json(m, tree, view) for m in messages],
            "runs": [r.model_dump(exclude_none=True) for r in tree.runs()],
        }
        style.out(json.dumps(document, indent=2, default=str))
        return 0
    if not len(tree):
        style.out(f"channel {args.channel} has no messages ({read} entries)")
        return 0
    lines = _selected_lines(view, style) if args.selected else tree_lines(tree, view, style)
    for line in lines:
        style.out(line)
    return 0


def _all(tree: Tree) -> list[Message]:
    return list(tree)


def _json(message: Message, tree: Tree, view: View) -> dict[str, Any]:
    siblings = [m.id for m in view.siblings(message.id)]
    return {
        "id": message.id,
        "role": message.role,
        "parent": tree.parent_of(message.id),
        "run_id": message.run_id,
        "status": message.status,
        "text": message.text,
        "siblings": siblings if len(siblings) > 1 else [],
        "selected": message.id in view.message_ids,
    }


def _label(message: Message, style: Style) -> str:
    who = style.bold("user") if message.role == "user" else style.cyan(message.role)
    text = message.text.strip().replace("\n", " ")
    if len(text) > 70:
        text = text[:67] + "..."
    status = "" if message.status == "complete" else style.dim(f" ({message.status})")
    return f"{who}{status} {style.dim(message.id[:8])}: {text}"


def _selected_lines(view: View, style: Style) -> list[str]:
    return [f"{n:>3} {_label(m, style)}" for n, m in enumerate(view.messages, 1)]


def tree_lines(tree: Tree, view: View, style: Style) -> list[str]:
    """Every branch: a chain stays flush; a message with several continuations opens one
    indented, marked branch per continuation (`*` marks what the default view shows)."""
    order = tree.structure.order
    position = {mid: i for i, mid in enumerate(order)}
    children: dict[str | None, list[str]] = {}
    for mid in order:
        parent = tree.parent_of(mid)
        if parent is not None and parent not in position:
            parent = None  # its parent is not in the tree (trimmed): a root
        children.setdefault(parent, []).append(mid)
    shown = set(view.message_ids)
    lines: list[str] = []

    def branches(kids: list[str], prefix: str) -> list[tuple[str, str, str]]:
        if len(kids) == 1:
            return [(kids[0], prefix, prefix)]
        last = len(kids) - 1
        return [
            (
                kid,
                prefix + ("└─ " if i == last else "├─ "),
                prefix + ("   " if i == last else "│  "),
            )
            for i, kid in enumerate(kids)
        ]

    # Iterative depth-first walk: conversations can be thousands of messages deep.
    stack = list(reversed(branches(children.get(None, []), "")))
    while stack:
        mid, line_prefix, child_prefix = stack.pop()
        mark = style.green("*") if mid in shown else " "
        lines.append(f"{line_prefix}{mark} {_label(tree.snapshot(mid), style)}")
        stack.extend(reversed(branches(children.get(mid, []), child_prefix)))
    return lines
