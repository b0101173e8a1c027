// The chat page's pure helpers (ait/web/static/chat-rows.js): rows, labels, the run to stop.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Tree, View } from "../../ait/web/static/ait.js";
import {
  connectionState, stopTarget, displayRows, parseChannels, validChannel,
} from "../../ait/web/static/chat-rows.js";
import { start, text, user } from "./events.js";

const said = (run, id, parent, payload) => ({
  type: "output", run_id: run, message_id: id, role: "assistant", parent, payload,
});
const end = (run) => ({ type: "run.end", run_id: run, invocation_id: "i", reason: "complete" });

function edited() {
  const tree = new Tree();
  tree.historyComplete = true;
  tree.apply([
    ["1-0", user(1)],
    ["2-0", start("r1", 1)],
    ["3-0", said("r1", "a1", "u1", text("Hello"))],
    ["4-0", end("r1")],
    ["5-0", user(2, { fork_of: "u1" })],
  ]);
  return tree;
}

test("an edited message shows <n/m> and the arrows that apply", () => {
  const tree = edited();
  const view = new View(tree);
  const [row] = displayRows(view);
  assert.equal(row.id, "u2");
  assert.deepEqual(row.branch, { index: 1, count: 2, label: "<2/2>" });
  assert.equal(row.canPrev, true);
  assert.equal(row.canNext, false);
  assert.equal(row.editable, true);
  assert.equal(row.regenerable, false);
  view.select("u2", 0);
  const rows = displayRows(view);
  assert.deepEqual(rows.map((r) => [r.id, r.role, r.text, r.branch?.label ?? null]), [
    ["u1", "user", "question 1", "<1/2>"],
    ["a1", "assistant", "Hello", null],
  ]);
  assert.equal(rows[1].regenerable, true);
  assert.equal(rows[1].run_id, "r1");
});

test("a run going is the one to stop; an ended one is not", () => {
  const tree = new Tree();
  tree.apply([["1-0", user(1)], ["2-0", start("r1", 1)], ["3-0", said("r1", "a1", "u1", text("Hi"))]]);
  assert.deepEqual(stopTarget(tree, "u1"), { run_id: "r1" });
  assert.equal(displayRows(new View(tree))[1].status, "streaming");
  tree.apply([["4-0", end("r1")]]);
  assert.equal(stopTarget(tree, "u1"), null);
  tree.apply([["5-0", user(2, { parent: "a1" })]]);
  assert.deepEqual(stopTarget(tree, "u2"), { input_message_id: "u2" });
  assert.equal(stopTarget(tree, null), null);
});

test("a tool call asking approval gives an approval row", () => {
  const tree = new Tree();
  tree.apply([
    ["1-0", user(1)],
    ["2-0", start("r1", 1)],
    ["3-0", said("r1", "a1", "u1", [
      { type: "tool-input-available", id: "c1", name: "lookup", input: { q: "x" } },
      { type: "tool-approval-request", id: "c1" },
    ])],
  ]);
  const [, answer] = displayRows(new View(tree));
  assert.deepEqual(answer.approvals, [{ call_id: "c1", name: "lookup", input: { q: "x" } }]);
  tree.apply([["4-0", user(2, {
    message_id: "a1", run_id: "r1", payload: [{ type: "tool-approval-response", id: "c1", approved: true }],
  })]]);
  assert.deepEqual(displayRows(new View(tree))[1].approvals, []);
});

test("connection states, channel names and the saved list", () => {
  assert.equal(connectionState(0, false), "connecting");
  assert.equal(connectionState(1, false), "live");
  assert.equal(connectionState(0, true), "reconnecting");
  assert.equal(connectionState(2, true), "reconnecting");
  assert.equal(validChannel("demo-web:1"), true);
  assert.equal(validChannel("no spaces"), false);
  assert.equal(validChannel(""), false);
  assert.deepEqual(parseChannels('["a", "a", "b c", 3, "d"]'), ["a", "d"]);
  assert.deepEqual(parseChannels("not json"), []);
  assert.deepEqual(parseChannels(null), []);
});
