// The chat page served by the bridge at `/` (Bridge(page=True), `ait serve`): plain DOM over
// ait.js. Its pure helpers are in chat-rows.js; this module only draws and wires buttons.
import { Tree, View, follow } from "./ait.js";
import { connectionState, stopTarget, displayRows, parseChannels, validChannel } from "./chat-rows.js";

const base = new URL(".", location.href);
const STORE = "ait.chat.channels";
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

let current = null; // {name, tree, view, stream, before, lastSent}

function channels() {
  return parseChannels(localStorage.getItem(STORE));
}

function saveChannel(name) {
  const names = channels().filter((n) => n !== name);
  localStorage.setItem(STORE, JSON.stringify([name, ...names]));
}

function drawChannels() {
  const list = $("channels");
  list.replaceChildren(...channels().map((name) => el("li", {},
    current?.name === name ? marked(button(name)) : button(name))));
}

function button(name) {
  return el("button", { type: "button", textContent: name, onclick: () => open(name) });
}

function marked(node) {
  node.setAttribute("aria-current", "true");
  return node;
}

async function call(action, body) {
  const response = await fetch(new URL(`channels/${encodeURIComponent(current.name)}/${action}`, base), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const document_ = await response.json();
  if (!response.ok) {
    alert(`${action}: ${document_.error?.message ?? response.status}`);
    throw new Error(document_.error?.message);
  }
  return document_;
}

async function history(before) {
  const query = new URLSearchParams({ limit: "30" });
  if (before) query.set("before", before);
  const url = new URL(`channels/${encodeURIComponent(current.name)}/history?${query}`, base);
  const page = await (await fetch(url)).json();
  current.tree.apply(page.events.map((item) => [item.id, item.event]));
  current.before = page.before;
  current.tree.historyComplete = page.before === null;
  return page;
}

function setState(state) {
  $("state").dataset.state = state;
  $("state").textContent = state;
}

async function open(name) {
  if (current) {
    current.stream.close();
    current.view.close();
  }
  saveChannel(name);
  const tree = new Tree({ onError: (error) => console.warn("not folded", error) });
  const view = new View(tree, { window: 50 });
  current = { name, tree, view, stream: { close() {} }, before: null, lastSent: null };
  const mine = current;
  $("title").textContent = name;
  location.hash = encodeURIComponent(name);
  drawChannels();
  setState("connecting");
  view.onChange(() => {
    if (current === mine) draw();
  });
  const page = await history(null);
  if (current !== mine) return;
  let wasOpen = false;
  class Watched extends EventSource {
    constructor(url) {
      super(url);
      const show = () => {
        if (this.readyState === 1) wasOpen = true;
        if (current === mine) setState(connectionState(this.readyState, wasOpen));
      };
      this.addEventListener("open", show);
      this.addEventListener("error", show);
    }
  }
  current.stream = follow(new URL(`channels/${encodeURIComponent(name)}/events`, base).href, {
    tree, after: page.cursor, EventSourceClass: Watched,
  });
  draw();
}

function draw() {
  const { view, tree } = current;
  const rows = displayRows(view);
  const older = $("older");
  older.hidden = !(view.hasOlder || current.before);
  const nodes = rows.map((row) => drawRow(row));
  $("messages").replaceChildren(older, ...nodes);
  $("stop").disabled = stopTarget(tree, current.lastSent) === null;
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function drawRow(row) {
  const meta = el("div", { className: "meta" });
  if (row.branch) {
    meta.append(
      el("button", { type: "button", textContent: "<", disabled: !row.canPrev, title: "previous branch",
        onclick: () => current.view.select(row.id, row.branch.index - 1) }),
      el("span", { className: "branch", textContent: `${row.branch.index + 1}/${row.branch.count}` }),
      el("button", { type: "button", textContent: ">", disabled: !row.canNext, title: "next branch",
        onclick: () => current.view.select(row.id, row.branch.index + 1) }),
    );
  }
  if (row.status && row.status !== "complete") meta.append(el("span", { textContent: row.status }));
  if (row.editable) meta.append(el("button", { type: "button", textContent: "Edit", onclick: () => edit(row) }));
  if (row.regenerable) {
    meta.append(el("button", { type: "button", textContent: "Regenerate", onclick: () => regenerate(row) }));
  }
  const approvals = row.approvals.map((call) => el("div", { className: "approval" },
    `Run tool ${call.name}(${JSON.stringify(call.input ?? {})})? `,
    el("button", { type: "button", textContent: "Approve", onclick: () => approve(row, call, true) }),
    " ",
    el("button", { type: "button", textContent: "Deny", onclick: () => approve(row, call, false) }),
  ));
  return el("div", { className: `message ${row.role}${row.pending ? " pending" : ""}` },
    el("div", { className: "text", textContent: row.text || (row.status === "streaming" ? "…" : "") }),
    ...approvals, meta);
}

async function send(text) {
  const parent = current.view.sendParent();
  const sent = await call("send", { content: text, parent: parent ?? null });
  current.lastSent = sent.message_id;
}

async function edit(row) {
  const text = prompt("Edit the message", row.text);
  if (text === null || text.trim() === "") return;
  const [parent, forkOf] = current.view.editTarget(row.id);
  const sent = await call("edit", { message_id: forkOf, parent, content: text });
  current.view.expectEdit(sent.message_id);
  current.lastSent = sent.message_id;
}

async function regenerate(row) {
  const [, parent] = current.view.regenerateTarget(row.id);
  const sent = await call("regenerate", { message_id: row.id, parent });
  current.view.expectRegenerate(sent.message_id);
  current.lastSent = sent.message_id;
}

async function approve(row, toolCall, approved) {
  await call("approval", { run_id: row.run_id, message_id: row.id, call_id: toolCall.call_id, approved });
}

async function stop() {
  const target = stopTarget(current.tree, current.lastSent);
  if (target !== null) await call("cancel", target);
}

async function older() {
  const { view } = current;
  if (view.revealOlder(30) === 0 && current.before) {
    await history(current.before); // older messages are not in the tree yet: fetch a page
    view.revealOlder(30);
  }
  draw();
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!current || text === "") return;
  $("text").value = "";
  send(text).catch((error) => console.warn(error));
});
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("new-channel").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("channel-name").value.trim();
  if (!validChannel(name)) {
    alert("A channel name is 1 to 200 of A-Z a-z 0-9 . _ - :");
    return;
  }
  $("channel-name").value = "";
  open(name);
});
$("stop").addEventListener("click", () => stop().catch((error) => console.warn(error)));
$("older").addEventListener("click", () => older().catch((error) => console.warn(error)));

drawChannels();
const wanted = decodeURIComponent(location.hash.slice(1));
const first = validChannel(wanted) ? wanted : channels()[0];
if (first) open(first);
