// chat.js on a tiny fake DOM (no browser): it opens the conversation in the URL, loads its
// history, follows it from the history's cursor, draws the rows and posts what is typed.
// The browser tests proper come with selenium; this catches a page that throws.
import { test } from "node:test";
import assert from "node:assert/strict";

import { start, text, user } from "./events.js";

class FakeElement {
  constructor(id = null, tag = "div") {
    this.id = id;
    this.tagName = tag;
    this.children = [];
    this.listeners = {};
    this.attributes = {};
    this.dataset = {};
    this.value = "";
    this.textContent = "";
    this.hidden = false;
  }
  append(...nodes) { this.children.push(...nodes); }
  replaceChildren(...nodes) { this.children = nodes; }
  setAttribute(name, value) { this.attributes[name] = value; }
  addEventListener(type, listener) { (this.listeners[type] ??= []).push(listener); }
  dispatch(type, event = {}) {
    for (const listener of this.listeners[type] ?? []) listener({ preventDefault() {}, ...event });
  }
  requestSubmit() { this.dispatch("submit"); }
  get text() {
    return [this.textContent, ...this.children.map((c) => (typeof c === "string" ? c : c.text))].join("");
  }
}

test("the page opens the conversation in the URL, follows it and sends", async () => {
  const elements = new Map();
  const posts = [];
  const sources = [];
  const history = [["1-0", user(1)], ["2-0", start("r1", 1)]]
    .map(([id, event]) => ({ channel: "talk", id, event }));
  globalThis.document = {
    getElementById: (id) => {
      if (!elements.has(id)) elements.set(id, new FakeElement(id));
      return elements.get(id);
    },
    createElement: (tag) => new FakeElement(null, tag),
  };
  const stored = {};
  globalThis.localStorage = { getItem: (k) => stored[k] ?? null, setItem: (k, v) => { stored[k] = v; } };
  globalThis.location = { href: "http://bridge/#talk", hash: "#talk" };
  globalThis.alert = (message) => assert.fail(message);
  globalThis.fetch = async (url, options = {}) => {
    const path = new URL(url).pathname;
    if (options.method === "POST") {
      posts.push([path, JSON.parse(options.body)]);
      return { ok: true, json: async () => ({ message_id: "u2", event_id: "e2", entry_id: "9-0", run_id: null }) };
    }
    assert.equal(path, "/channels/talk/history");
    return { ok: true, json: async () => ({ channel: "talk", events: history, before: null, cursor: "2-0" }) };
  };
  globalThis.EventSource = class {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.listeners = {};
      sources.push(this);
    }
    addEventListener(type, listener) { (this.listeners[type] ??= []).push(listener); }
    opened() {
      this.readyState = 1;
      this.onopen?.();
      for (const listener of this.listeners.open ?? []) listener();
    }
    emit(id, event) { this.onmessage({ data: JSON.stringify(event), lastEventId: id }); }
    close() {}
  };

  await import("../../ait/web/static/chat.js");
  for (let i = 0; i < 10 && sources.length === 0; i++) await new Promise((r) => setTimeout(r, 0));
  const $ = (id) => document.getElementById(id);
  assert.equal(sources.length, 1);
  assert.equal(sources[0].url, "http://bridge/channels/talk/events?after=2-0");
  assert.equal($("state").textContent, "connecting");
  sources[0].opened();
  assert.equal($("state").textContent, "live");
  assert.deepEqual(JSON.parse(stored["ait.chat.channels"]), ["talk"]);

  sources[0].emit("3-0", {
    type: "output", run_id: "r1", message_id: "a1", role: "assistant", parent: "u1", payload: text("Hello"),
  });
  const shown = $("messages").children.filter((c) => c.id !== "older").map((c) => c.text);
  assert.equal(shown.length, 2);
  assert.match(shown[0], /question 1/);
  assert.match(shown[1], /Hello/);
  assert.equal($("stop").disabled, false);

  sources[0].emit("4-0", { type: "run.end", run_id: "r1", invocation_id: "i", reason: "complete" });
  assert.equal($("stop").disabled, true);
  $("text").value = "and then?";
  $("composer").dispatch("submit");
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(posts, [["/channels/talk/send", { content: "and then?", parent: "a1" }]]);
});
