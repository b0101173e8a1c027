// The rest of ait.js's surface: write helpers, paths, optimistic inputs, closed views.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Tree, View, cancelApplies, entryIdKey } from "../../ait/web/static/ait.js";
import { start, text, user } from "./events.js";

const said = (run, id, parent, delta) => ({
  type: "output", run_id: run, message_id: id, role: "assistant", parent, payload: text(delta),
});

function conversation() {
  const tree = new Tree();
  tree.historyComplete = true;
  tree.apply([
    ["1-0", user(1)],
    ["2-0", start("r1", 1)],
    ["3-0", said("r1", "a1", "u1", "Hel")],
    ["4-0", said("r1", "a1", "u1", "lo")],
    ["5-0", { type: "run.end", run_id: "r1", invocation_id: "i", reason: "complete" }],
    ["6-0", user(2, { parent: "a1" })],
  ]);
  return tree;
}

test("reading a tree", () => {
  const tree = conversation();
  assert.equal(tree.message("a1").text, "Hello");
  assert.equal(tree.message("a1").status, "complete");
  assert.equal(tree.message("nope"), null);
  assert.deepEqual(tree.pathTo("u2").map((m) => m.id), ["u1", "a1", "u2"]);
  assert.equal(tree.parentOf("a1"), "u1");
  assert.equal(tree.runForInput("u1").run_id, "r1");
  assert.equal(tree.runInfo("r1").status, "complete");
  assert.equal(tree.size, 3);
  assert.deepEqual(entryIdKey("12-3"), [12, 3]);
  assert.equal(entryIdKey("12"), null);
});

test("write helpers, optimistic inputs and a closed view", () => {
  const tree = conversation();
  const view = new View(tree);
  assert.equal(view.sendParent(), "u2");
  assert.deepEqual(view.editTarget("u2"), ["a1", "u2"]);
  assert.deepEqual(view.regenerateTarget("a1"), ["r1", "u1"]);
  assert.throws(() => view.editTarget("a1"), /not an input message/);
  assert.throws(() => view.select("u1", 1), /no sibling 1/);
  tree.addOptimistic(user(3, { parent: "u2" }));
  assert.deepEqual(view.messages.map((m) => [m.id, m.optimistic]), [["u1", false], ["a1", false], ["u2", false], ["u3", true]]);
  tree.apply([["7-0", user(3, { parent: "u2" })]]);
  assert.equal(view.messages.at(-1).optimistic, false);
  view.close();
  assert.throws(() => view.sendParent(), /the view is closed/);
});

test("the cancel rule", () => {
  const cancel = { type: "cancel", event_id: "c", client_id: "alice", scope: "client" };
  const run = { runId: "r1", inputMessageId: "u1", clientId: "alice", after: [1, 0] };
  assert.equal(cancelApplies(cancel, [2, 0], run), true);
  assert.equal(cancelApplies(cancel, [1, 0], run), false); // not after the input
  assert.equal(cancelApplies(cancel, [3, 0], { ...run, before: [3, 0] }), false); // ended
  assert.equal(cancelApplies({ ...cancel, client_id: "bob" }, [2, 0], run), false);
});

test("isResend: a copy under an earlier entry's resend key", () => {
  const tree = conversation();
  const copy = { ...said("r1", "a1", "u1", "lo"), entry_key: "k1" };
  tree.apply([["8-0", copy]]);
  assert.equal(tree.isResend("8-0", copy), false); // the first entry with k1
  tree.apply([["9-0", copy]]);
  assert.equal(tree.isResend("9-0", copy), true);
  assert.equal(tree.message("a1").text, "Hellolo");
  assert.equal(tree.isResend("9-0", user(1, { entry_key: "k1" })), false); // inputs: event id
  assert.equal(tree.isResend("9-0", said("r1", "a1", "u1", "lo")), false); // no key
});
