"""Generate the conformance corpus: channel logs recorded from real runs, and the views the
Python fold makes of them. Run it with `scripts/conformance` (docs/conformance.md).

Each scenario runs a real `AgentWorker` (a `ScriptedProvider` model) and a `ClientSession`
on an `EmbeddedRedis`, one step after another so that the channel order is always the same,
then reads the channel back. The log is made deterministic by renaming generated ids in
order of appearance (`m1`, `r1`, ...) and entry ids to `1-0`, `2-0`, ...; timings are zeroed.
The expected views are then computed by the Python fold from the normalized log.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

import ait
from ait.conversation import Tree, View
from ait.events import EVENT_TYPES, BadEntry, Event, Input, Output, RunStart
from ait.providers import ChatRequest, ToolCallEnd
from ait.testing import ScriptedProvider

HERE = Path(__file__).parent
LOGS = HERE / "logs"

Entry = tuple[str, Event | BadEntry]

# -- the JSON form of events -------------------------------------------------------------------


def event_to_json(event: Event | BadEntry) -> dict[str, Any]:
    """An event as a JSON object: its fields (`run_id`...), `type` and `payload`; a bad entry
    as `{"type": "bad-entry", "reason": ...}`."""
    if isinstance(event, BadEntry):
        return {"type": "bad-entry", "reason": event.reason}
    data = event.model_dump(mode="json", exclude_none=True)
    if not data.get("extra_headers"):
        data.pop("extra_headers", None)
    payload = data.pop("payload", None)
    return {**data, "payload": payload} if payload is not None else data


def event_from_json(data: dict[str, Any], entry_id: str) -> Event | BadEntry:
    if data["type"] == "bad-entry":
        return BadEntry(entry_id=entry_id, reason=data["reason"])
    return EVENT_TYPES[data["type"]].model_validate(data)  # type: ignore[return-value]


def entries_of(log: dict[str, Any]) -> list[Entry]:
    return [(item["id"], event_from_json(item["event"], item["id"])) for item in log["entries"]]


# -- the expected views --------------------------------------------------------------------------


def snapshot(tree: Tree, view: View, errors: list[str]) -> dict[str, Any]:
    messages = []
    for message in view.messages:
        tools = [
            {"id": p.id, "name": p.name, "state": p.state, "approval": p.approval}
            for p in message.parts
            if p.type == "tool-call"
        ]
        item: dict[str, Any] = {
            "id": message.id,
            "role": message.role,
            "text": message.text,
            "status": message.status,
            "optimistic": message.optimistic,
            "run_id": message.run_id,
            "siblings": [m.id for m in view.siblings(message.id)],
            "selected": view.selected_index(message.id),
        }
        if tools:
            item["tools"] = tools
        messages.append(item)
    runs = [
        {
            "run_id": r.run_id,
            "status": r.status,
            "cancel_requested": r.cancel_requested,
            "message_ids": list(r.message_ids),
        }
        for r in tree.runs()
    ]
    return {
        "messages": messages,
        "runs": runs,
        "has_older": view.has_older,
        "errors": list(errors),
    }


def play(entries: list[Entry], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the steps of a view spec; return a snapshot after each step."""
    tree = Tree()
    tree.history_complete = True
    view = View(tree, window=spec.get("window", 50))
    errors: list[str] = []
    snapshots: list[dict[str, Any]] = []
    for step in spec["steps"]:
        if "apply" in step:
            start, end = step["apply"]
            for error in tree.apply(entries[start:end]):
                errors.append(error.entry_id or "")
        elif "apply_indexes" in step:
            for error in tree.apply([entries[i] for i in step["apply_indexes"]]):
                errors.append(error.entry_id or "")
        elif "select" in step:
            message_id, index = step["select"]
            view.select(message_id, index)
        elif "optimistic" in step:
            event = event_from_json(step["optimistic"], "0-0")
            assert isinstance(event, Input)
            tree.add_optimistic(event)
        elif "remove_optimistic" in step:
            tree.remove_optimistic(step["remove_optimistic"])
        elif "expect_edit" in step:
            view.expect_edit(step["expect_edit"])
        elif "expect_regenerate" in step:
            view.expect_regenerate(step["expect_regenerate"])
        elif "reveal_older" in step:
            view.reveal_older(step["reveal_older"])
        else:
            raise ValueError(f"unknown step {step!r}")
        snapshots.append(snapshot(tree, view, errors))
    return snapshots


def view_specs(entries: list[Entry]) -> list[dict[str, Any]]:
    """The views every log is checked with (see docs/conformance.md)."""
    n = len(entries)
    specs: list[dict[str, Any]] = [
        {"name": "live", "steps": [{"apply": [i, i + 1]} for i in range(n)]},
        {"name": "catch-up", "steps": [{"apply": [0, n]}]},
        {
            "name": "window-2",
            "window": 2,
            "steps": [{"apply": [0, n]}, {"reveal_older": 1}, {"reveal_older": 100}],
        },
    ]
    # History read newest first, a page of 3 entries at a time, as a client loading older
    # pages: the fold must not depend on arrival order. Then everything again: idempotent.
    pages = [{"apply": [max(0, end - 3), end]} for end in range(n, 0, -3)]
    specs.append({"name": "pages-newest-first", "steps": [*pages, {"apply": [0, n]}]})
    # Any order, any batches: a seeded shuffle, in batches of 1 to 4 entries.
    rng = random.Random(n)
    order = list(range(n))
    rng.shuffle(order)
    batches: list[dict[str, Any]] = []
    while order:
        size = rng.randint(1, 4)
        batches.append({"apply_indexes": order[:size]})
        order = order[size:]
    specs.append({"name": "shuffled", "steps": batches})
    # Choose the oldest alternative of every group shown with siblings, one at a time.
    tree = Tree()
    tree.apply(entries)
    view = View(tree)
    steps: list[dict[str, Any]] = [{"apply": [0, n]}]
    done: set[str] = set()
    for _ in range(20):
        target = next(
            (
                m.id
                for m in view.messages
                if len(view.siblings(m.id)) > 1
                and view.selected_index(m.id) != 0
                and m.id not in done
            ),
            None,
        )
        if target is None:
            break
        done.add(target)
        view.select(target, 0)
        steps.append({"select": [target, 0]})
    if len(steps) > 1:
        specs.append({"name": "select-oldest", "steps": steps})
    # As the sender: its inputs shown optimistically, its own edits and regenerations expected;
    # then a message whose publish fails, shown and taken back.
    steps = []
    for i, (_, event) in enumerate(entries):
        if isinstance(event, Input) and event.client_id == "alice":
            if event.regenerate is not None:
                steps.append({"expect_regenerate": event.message_id})
            elif event.fork_of is not None:
                steps.append({"expect_edit": event.message_id})
            if event.regenerate is None and event.run_id is None:
                steps.append({"optimistic": event_to_json(event)})
        steps.append({"apply": [i, i + 1]})
    view_tree = Tree()
    view_tree.apply(entries)
    last = View(view_tree).last_message_id
    failed = Input(
        event_id="e-failed",
        message_id="m-failed",
        role="user",
        client_id="alice",
        parent=last,
        payload=[{"type": "text-delta", "id": "t0", "delta": "lost"}],
    )
    steps.append({"optimistic": event_to_json(failed)})
    steps.append({"remove_optimistic": "e-failed"})
    specs.append({"name": "sender", "steps": steps})
    return specs


# -- recording -----------------------------------------------------------------------------------


def model(request: ChatRequest) -> list[Any]:
    last = request.messages[-1]
    if last.role == "tool":
        results = [m.text for m in request.messages if m.role == "tool"]
        return ["Results: ", ", ".join(results[-2:]), "."]
    text = last.text
    if "tools" in text:
        return [
            ToolCallEnd(id="call-a", name="weather", arguments={"city": "Paris"}),
            ToolCallEnd(id="call-b", name="weather", arguments={"city": "Oslo"}),
        ]
    count = sum(1 for m in request.messages if m.role == "assistant")
    return ["Answer ", str(count + 1), " to: ", text]


async def asking_approval(stream: Any) -> Any:
    async for event in stream:
        yield event
        if isinstance(event, ToolCallEnd):
            yield {"type": "tool-approval-request", "id": event.id}


async def one(text: str) -> Any:
    yield text


async def approval(run: ait.Run) -> None:
    """The `delete` model: asks before deleting, acts on the answer once resumed."""
    if not run.resumed:
        provider = ScriptedProvider([ToolCallEnd(id="call-d", name="delete", arguments={})])
        await run.pipe(asking_approval(provider.stream()))
        await run.suspend()
        return
    conversation = await run.load_conversation()
    (call,) = [p for p in conversation[-1].parts if p.type == "tool-call"]
    if call.approval == "approved":
        await run.tool_result(call.id, "deleted")
    result = await run.pipe(one(f"Approval: {call.approval}."))
    await run.end(result.reason, error=result.error)


async def answer(run: ait.Run) -> None:
    await run.start()
    conversation = await run.load_conversation()
    if (
        run.resumed
        and any(p.type == "tool-call" and p.name == "delete" for p in conversation[-1].parts)
        or not run.resumed
        and "delete" in conversation[-1].text
    ):
        await approval(run)
        return
    request = ChatRequest.from_conversation(conversation)
    text = request.messages[-1].text
    if "slow" in text:
        provider = ScriptedProvider(["tick "] * 200, delay=0.05)
    elif "fail" in text:
        provider = ScriptedProvider(["Half"], fail_after=1, error=ait.ProviderTimeout("too slow"))
    else:
        provider = ScriptedProvider(model)
    result = await run.pipe(provider.stream(request))
    if result.reason == "complete" and result.tool_calls:
        await run.suspend()
    else:
        await run.end(result.reason, error=result.error)


Script = Callable[[ait.Bus, ait.ClientSession], Awaitable[None]]


async def branching(bus: ait.Bus, client: ait.ClientSession) -> None:
    view = client.view
    await (await view.send("Hi")).wait()
    await (await view.regenerate(view.messages[-1].id)).wait()
    await (await view.edit(view.messages[0].id, "Hello")).wait()
    await (await view.send("And then?")).wait()
    await (await view.regenerate(view.messages[-1].id)).wait()


async def cancel(bus: ait.Bus, client: ait.ClientSession) -> None:
    view = client.view
    await (await view.send("Hi")).wait()
    active = await view.send("slow please")
    await active.wait_run_id()
    await active.cancel()
    await active.wait()
    await (await view.send("After the cancel")).wait()


async def tools(bus: ait.Bus, client: ait.ClientSession) -> None:
    view = client.view
    info = await (await view.send("Use two tools")).wait()
    assert info.status == "suspended", info
    await view.send_tool_result("call-a", "sunny")
    await anyio.sleep(0.3)  # the run waits for both answers: still suspended
    await (await view.send_tool_result("call-b", "snow")).wait()
    await (await view.send("Thanks")).wait()


async def errors(bus: ait.Bus, client: ait.ClientSession) -> None:
    view = client.view
    await (await view.send("Hi")).wait()
    await (await view.send("fail now")).wait()
    await (await view.regenerate(view.messages[-1].id)).wait()


async def bad_entries(bus: ait.Bus, client: ait.ClientSession) -> None:
    view = client.view
    channel = bus.channel(client.channel.name)
    await channel.write_encoded([[b"garbage", b"1"]])
    await (await view.send("Hi")).wait()
    await channel.write_encoded([[b"t", b"output", b"v", b"9"]])
    await (await view.send("Still there?")).wait()


async def paging(bus: ait.Bus, client: ait.ClientSession) -> None:
    view = client.view
    for question in ("One", "Two", "Three", "Four"):
        await (await view.send(question)).wait()


async def restarts(bus: ait.Bus, client: ait.ClientSession) -> None:
    """A worker dies mid-answer; another, with `restart_lost`, ends the run `agent-lost` and
    answers the same input again with a new run."""
    view = client.view
    await (await view.send("Hi")).wait()
    asked = await view.send("Are you there?", pool="lost")
    queue = bus.pool("lost")
    try:
        ((_, invocation),) = await queue.read("dead-worker", 1, 5000)
    finally:
        await queue.aclose()
    doomed = ait.AgentSession(bus, client.channel.name)
    await doomed.__aenter__()
    try:
        lost = doomed.create_run(invocation)
        await lost.start()
        await lost.pipe(ScriptedProvider(["I was say"]).stream())
        doomed.tasks.stop()  # the worker dies: its run never ends, its invocation is not acked
        async with anyio.create_task_group() as tg:
            worker = ait.AgentWorker(
                bus, answer, pool="lost", lease=1, restart_lost=True, block_ms=100
            )
            tg.start_soon(worker.run)
            await asked.wait()
            with anyio.fail_after(20):
                while (run := client.tree.run_for_input(asked.message_id)) is None or (
                    run.run_id == lost.run_id or run.status != "complete"
                ):
                    await anyio.sleep(0.05)
            worker.stop()
    finally:
        await doomed.__aexit__(None, None, None)


async def approvals(bus: ait.Bus, client: ait.ClientSession) -> None:
    view = client.view
    await (await view.send("Please delete a.txt")).wait()
    await (await view.approve("call-d", True)).wait()
    await (await view.send("And delete b.txt")).wait()
    await (await view.approve("call-d", False, reason="keep it")).wait()


async def cancel_scopes(bus: ait.Bus, client: ait.ClientSession) -> None:
    """Cancels by input message id (before the run is known), by client, for all, and one
    after its run ended (which asks nothing)."""
    view = client.view
    done = await (await view.send("Hi")).wait()
    await client.cancel(done.run_id)
    active = await view.send("slow one")
    await active.cancel()
    await active.wait()
    active = await view.send("slow two")
    await active.wait_run_id()
    await client.cancel_all()
    await active.wait()
    async with ait.ClientSession(bus, client.channel.name, client_id="bob") as bob:
        active = await view.send("slow three")
        await active.wait_run_id()
        await bob.publish(ait.Cancel(event_id="e-all", client_id="bob", scope="all"))
        await active.wait()


async def two_clients(bus: ait.Bus, client: ait.ClientSession) -> None:
    """Bob regenerates and edits on alice's branch; alice goes on on hers."""
    alice = client.view
    await (await alice.send("Hi")).wait()
    async with ait.ClientSession(bus, client.channel.name, client_id="bob") as session:
        bob = session.view
        with anyio.fail_after(10):
            while len(bob.messages) < 2:
                await anyio.sleep(0.01)
        await (await bob.regenerate(bob.messages[-1].id)).wait()
        await (await bob.edit(bob.messages[0].id, "Hello from bob")).wait()
        await anyio.sleep(0.2)
    await (await alice.send("Still me")).wait()


# -- logs written by hand: a careless writer, a resending one ------------------------------------


def _text(delta: str) -> list[dict[str, Any]]:
    return [{"type": "text-delta", "id": "t0", "delta": delta}]


def _said(run_id: str, message_id: str, parent: str, delta: str, **headers: Any) -> Output:
    return Output(
        run_id=run_id,
        message_id=message_id,
        role="assistant",
        parent=parent,
        payload=_text(delta),
        **headers,
    )


def _user(event_id: str, message_id: str, delta: str, **headers: Any) -> Input:
    return Input(
        event_id=event_id,
        message_id=message_id,
        role="user",
        client_id="carol",
        payload=_text(delta),
        **headers,
    )


def _started(run_id: str, event_id: str, message_id: str, **headers: Any) -> RunStart:
    return RunStart(
        run_id=run_id,
        invocation_id="i-x",
        input_event_id=event_id,
        input_message_id=message_id,
        run_client_id="carol",
        parent=message_id,
        **headers,
    )


def _resumed(run_id: str, event_id: str, message_id: str, **headers: Any) -> ait.RunResume:
    return ait.RunResume(
        run_id=run_id,
        invocation_id="i-x",
        input_event_id=event_id,
        input_message_id=message_id,
        run_client_id="carol",
        **headers,
    )


def _ended(run_id: str, reason: Any = "complete", **headers: Any) -> ait.RunEnd:
    return ait.RunEnd(run_id=run_id, invocation_id="i-x", reason=reason, **headers)


async def conflicts(bus: ait.Bus, client: ait.ClientSession) -> None:
    """Entries a careless or foreign writer makes, published as they are: the fold's rules
    for each (see ait/conversation/tree.py)."""
    channel = bus.channel(client.channel.name)
    user, said, started, ended = _user, _said, _started, _ended
    events: list[Event] = [
        user("e-a", "m-a", "first"),
        # Outputs before their run.start: filed under the run, placed by their own parent.
        said("r-a", "m-a1", "m-a", "early"),
        started("r-a", "e-a", "m-a"),
        started("r-a", "e-a", "m-a"),  # a second run.start: the first counts
        said("r-a", "m-a", "m-a", "x"),  # an output with an input's message id: refused
        _resumed("r-a", "e-a", "m-a"),  # not suspended: ignored
        ended("r-a"),
        ended("r-a", "cancelled"),  # a second run.end: the first is final
        said("r-b", "m-a1", "m-a", "theft"),  # another run's message: refused
        user("e-a", "m-a", "again"),  # the same input event twice: the first counts
        user("e-b", "m-b", "dangling edit", parent="m-a1", fork_of="m-gone"),
        user("e-c", "m-c", "cycle one", parent="m-a1", fork_of="m-d"),
        user("e-d", "m-d", "cycle two", parent="m-a1", fork_of="m-c"),
        user("e-e", "m-e", "an edit under another parent", parent="m-a", fork_of="m-c"),
        user("e-f", "m-f", "two inputs at once", parent="m-a1"),
        user("e-g", "m-g", "are both shown", parent="m-a1"),
    ]
    for event in events:
        await channel.publish(event)


async def resends(bus: ait.Bus, client: ait.ClientSession) -> None:
    """Entries a writer wrote twice under one resend key `k` (after an outage it could not
    tell whether a write landed): each counts once, the first in entry order, in any arrival
    order (the shuffled and paged views fold copies before their originals)."""
    channel = bus.channel(client.channel.name)

    def said(run_id: str, message_id: str, parent: str, delta: str, k: str) -> Output:
        return _said(run_id, message_id, parent, delta, entry_key=k)

    def started(run_id: str, event_id: str, message_id: str, k: str) -> RunStart:
        return _started(run_id, event_id, message_id, entry_key=k)

    suspend = ait.RunSuspend(
        run_id="r-b", invocation_id="i-x", payload={"awaiting": ["c1"]}, entry_key="k-b-s"
    )
    events: list[Event] = [
        _user("e-a", "m-a", "first"),
        started("r-a", "e-a", "m-a", "k-a-start"),
        said("r-a", "m-a1", "m-a", "Hel", "k-a-1"),
        said("r-a", "m-a1", "m-a", "Hel", "k-a-1"),  # a resend right after: folded once
        said("r-a", "m-a1", "m-a", "lo", "k-a-2"),
        said("r-a", "m-a2", "m-a", "second", "k-a-3"),
        said("r-a", "m-a1", "m-a", "lo", "k-a-2"),  # a resend after other entries
        started("r-a", "e-a", "m-a", "k-a-start"),  # a resent run.start
        _ended("r-a", entry_key="k-a-end"),
        _ended("r-a", entry_key="k-a-end"),  # a resent run.end
        _user("e-b", "m-b", "second", parent="m-a2"),
        started("r-b", "e-b", "m-b", "k-b-start"),
        said("r-b", "m-b1", "m-b", "waiting", "k-b-1"),
        suspend,
        _resumed("r-b", "e-b", "m-b", entry_key="k-b-r"),
        suspend,  # a resent suspend after the resume: the run stays active
        said("r-b", "m-b1", "m-b", "waiting", "k-b-1"),
        _user("e-a", "m-a", "first"),  # an input written twice: its event id, not k, decides
    ]
    for event in events:
        await channel.publish(event)


SCENARIOS: dict[str, tuple[str, Script]] = {
    "branching": (
        "send, regenerate, edit, send, regenerate: edit and regeneration groups",
        branching,
    ),
    "cancel": ("a run cancelled while it streams (cancel_requested), then a new message", cancel),
    "tools": ("two parallel tool calls, suspend, answers sent apart, resume", tools),
    "errors": ("a run ending in error, then regenerated", errors),
    "bad-entries": ("malformed entries among good ones", bad_entries),
    "paging": ("four exchanges, for windows and paging", paging),
    "restarts": ("a worker dies mid-run; its input answered again by a new run", restarts),
    "approvals": ("a tool call approved, then one denied (suspend, approval, resume)", approvals),
    "cancel-scopes": (
        "cancels by input message id, by client, for all, and one after its run ended",
        cancel_scopes,
    ),
    "conflicts": (
        "entries a careless writer makes: duplicates, early outputs, stolen ids, "
        "fork-of cycles and dangling targets",
        conflicts,
    ),
    "two-clients": ("another client regenerates and edits on this client's branch", two_clients),
    "resends": (
        "entries written twice under one resend key k: outputs, run.start, suspend, run.end",
        resends,
    ),
}


async def record(name: str, script: Script) -> list[Entry]:
    async with ait.Bus.embedded() as bus, anyio.create_task_group() as tg:
        worker = ait.AgentWorker(bus, answer)
        tg.start_soon(worker.run)
        async with ait.ClientSession(bus, f"conformance-{name}", client_id="alice") as client:
            with anyio.fail_after(60):
                await script(bus, client)
            await anyio.sleep(0.3)
        worker.stop()
        entries: list[Entry] = []
        channel = bus.channel(f"conformance-{name}")
        after = "0-0"
        while batch := await channel.read(after, 100):
            entries.extend(batch)
            after = batch[-1][0]
        return entries


_ID_FIELDS = {
    "event_id": "e",
    "input_event_id": "e",
    "message_id": "m",
    "input_message_id": "m",
    "parent": "m",
    "fork_of": "m",
    "regenerate": "m",
    "run_id": "r",
    "invocation_id": "i",
}


def normalize(entries: list[Entry]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    raw = [event_to_json(event) for _, event in entries]
    for data in raw:
        for field, prefix in _ID_FIELDS.items():
            value = data.get(field)
            if isinstance(value, str) and value not in names and len(value) >= 16:
                counts[prefix] = counts.get(prefix, 0) + 1
                names[value] = f"{prefix}{counts[prefix]}"

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, str):
            return names.get(value, value)
        if isinstance(value, list):
            return [walk(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
        if isinstance(value, dict):
            if value.get("type") == "metrics":  # pyright: ignore[reportUnknownMemberType]
                return {"type": "metrics"}
            return {k: walk(v, k) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
        return value

    return [{"id": f"{i + 1}-0", "event": walk(data)} for i, data in enumerate(raw)]


def build(name: str, description: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    log: dict[str, Any] = {"name": name, "description": description, "entries": items}
    entries = entries_of(log)
    views = []
    for spec in view_specs(entries):
        views.append({**spec, "expect": play(entries, spec)})
    log["views"] = views
    return log


def dump(log: dict[str, Any]) -> str:
    """JSON with one entry, one view's steps and one expected snapshot a line: small, and
    a change of the fold shows in a diff as the snapshots it changed."""

    def line(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def rows(items: list[Any], indent: str) -> str:
        return "[\n" + ",\n".join(indent + line(item) for item in items) + "\n" + indent[:-1] + "]"

    views = []
    for view in log["views"]:
        head = {k: v for k, v in view.items() if k not in ("steps", "expect")}
        views.append(
            line(head)[:-1]
            + ',\n   "steps": '
            + rows(view["steps"], "    ")
            + ',\n   "expect": '
            + rows(view["expect"], "    ")
            + "}"
        )
    return (
        "{\n"
        f' "name": {line(log["name"])},\n'
        f' "description": {line(log["description"])},\n'
        f' "entries": {rows(log["entries"], "  ")},\n'
        ' "views": [\n  ' + ",\n  ".join(views) + "\n ]\n}\n"
    )


async def generate(out: Path, only: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, (description, script) in SCENARIOS.items():
        if only and name not in only:
            continue
        entries = await record(name, script)
        log = build(name, description, normalize(entries))
        (out / f"{name}.json").write_text(dump(log))
        print(f"{name}: {len(entries)} entries, {len(log['views'])} views")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=LOGS)
    parser.add_argument("only", nargs="*", help="scenarios to record (default: all)")
    args = parser.parse_args()
    anyio.run(generate, args.out, args.only)


if __name__ == "__main__":
    sys.exit(main())
