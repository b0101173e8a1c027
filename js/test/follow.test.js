// follow(): Server-Sent Events folded into a tree, and reopened after the source gives up.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Tree, View, follow } from "../../ait/web/static/ait.js";

class FakeSource {
  static opened = [];

  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.closed = false;
    FakeSource.opened.push(this);
  }

  send(id, event) {
    this.onmessage({ data: typeof event === "string" ? event : JSON.stringify(event), lastEventId: id });
  }

  fail() {
    this.readyState = 2;
    this.onerror(new Error("gone"));
  }

  close() {
    this.closed = true;
  }
}

const hi = {
  type: "input", event_id: "e1", message_id: "m1", role: "user", client_id: "alice",
  payload: [{ type: "text-delta", id: "t0", delta: "Hi" }],
};

test("events are folded, and the source reopened after the last entry when it gives up", async (t) => {
  FakeSource.opened = [];
  const tree = new Tree();
  const view = new View(tree);
  const changes = [];
  view.onChange((change) => changes.push(change.kind));
  const seen = [];
  const stream = follow("/channels/c/events", {
    tree, EventSourceClass: FakeSource, onEvent: (id, event) => seen.push([id, event.type]),
  });
  const first = FakeSource.opened[0];
  assert.equal(first.url, "/channels/c/events");
  first.send("1-0", hi);
  assert.deepEqual(view.messages.map((m) => m.text), ["Hi"]);
  assert.deepEqual(changes, ["structure"]);
  first.send("2-0", "{not json");
  assert.deepEqual(seen, [["1-0", "input"], ["2-0", "bad-entry"]]);
  first.fail();
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(FakeSource.opened.length, 2);
  assert.equal(FakeSource.opened[1].url, "/channels/c/events?after=2-0");
  assert.equal(stream.lastEntryId, "2-0");
  stream.close();
  assert.ok(FakeSource.opened[1].closed);
});

test("a source that retries by itself is left to it", () => {
  FakeSource.opened = [];
  const errors = [];
  const stream = follow("/e?x=1", { EventSourceClass: FakeSource, after: "5-0", onError: (e) => errors.push(e) });
  assert.equal(FakeSource.opened[0].url, "/e?x=1&after=5-0");
  FakeSource.opened[0].readyState = 0; // CONNECTING: the browser retries
  FakeSource.opened[0].onerror(new Error("blip"));
  assert.equal(errors.length, 1);
  stream.close();
  assert.equal(FakeSource.opened.length, 1);
});

test("malformed events and entry ids are reported, the rest of the batch applies", () => {
  const reported = [];
  const tree = new Tree({ onError: (error) => reported.push(error.entry_id) });
  const errors = tree.apply([
    ["1-0", { type: "cancel", event_id: "e9", client_id: "a", run_id: "r1", scope: "all" }],
    ["nope", hi],
    ["2-0", null],
    ["3-0", { ...hi, payload: [{ type: "text-delta", id: "t0" }] }],
    ["4-0", hi],
  ]);
  assert.deepEqual(errors.map((e) => e.entry_id), ["1-0", "nope", "2-0", "3-0"]);
  assert.deepEqual(reported, ["1-0", "nope", "2-0", "3-0"]);
  assert.equal(tree.message("m1").text, "Hi");
  assert.equal(tree.size, 1);
});
