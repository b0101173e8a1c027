// ait.js over every log of the conformance corpus: each view's steps, and after each step
// the snapshot the Python fold made (conformance/generate.py `play` and `snapshot`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { Tree, View } from "../../ait/web/static/ait.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const logs = join(root, "conformance", "logs");

function snapshot(tree, view, errors) {
  const messages = view.messages.map((message) => {
    const item = {
      id: message.id,
      role: message.role,
      text: message.text,
      status: message.status,
      optimistic: message.optimistic,
      run_id: message.run_id,
      siblings: view.siblings(message.id).map((m) => m.id),
      selected: view.selectedIndex(message.id),
    };
    const tools = message.parts
      .filter((p) => p.type === "tool-call")
      .map((p) => ({ id: p.id, name: p.name, state: p.state, approval: p.approval }));
    if (tools.length) item.tools = tools;
    return item;
  });
  const runs = tree.runs().map((r) => ({
    run_id: r.run_id,
    status: r.status,
    cancel_requested: r.cancel_requested,
    message_ids: r.message_ids,
  }));
  return { messages, runs, has_older: view.hasOlder, errors: [...errors] };
}

function* play(entries, spec) {
  const tree = new Tree();
  tree.historyComplete = true;
  const view = new View(tree, { window: spec.window ?? 50 });
  const errors = [];
  for (const step of spec.steps) {
    if (step.apply) {
      const [start, end] = step.apply;
      for (const error of tree.apply(entries.slice(start, end))) errors.push(error.entry_id);
    } else if (step.apply_indexes) {
      for (const error of tree.apply(step.apply_indexes.map((i) => entries[i]))) errors.push(error.entry_id);
    } else if (step.select) {
      view.select(step.select[0], step.select[1]);
    } else if (step.optimistic) {
      tree.addOptimistic(step.optimistic);
    } else if (step.remove_optimistic) {
      tree.removeOptimistic(step.remove_optimistic);
    } else if (step.expect_edit) {
      view.expectEdit(step.expect_edit);
    } else if (step.expect_regenerate) {
      view.expectRegenerate(step.expect_regenerate);
    } else if (step.reveal_older !== undefined) {
      view.revealOlder(step.reveal_older);
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
    yield snapshot(tree, view, errors);
  }
}

const files = readdirSync(logs).filter((name) => name.endsWith(".json")).sort();

test("the corpus is there", () => {
  assert.ok(files.length > 0, `no logs in ${logs}`);
});

for (const file of files) {
  const log = JSON.parse(readFileSync(join(logs, file), "utf8"));
  for (const spec of log.views) {
    test(`${log.name}: view ${spec.name}`, () => {
      let step = 0;
      for (const got of play(log.entries, spec)) {
        assert.deepEqual(got, spec.expect[step], `step ${step}: ${JSON.stringify(spec.steps[step])}`);
        step += 1;
      }
      assert.equal(step, spec.expect.length);
    });
  }
}
