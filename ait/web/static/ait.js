// ait.js: the conversation fold of ait (ait/conversation) for the browser. One plain ES
// module, no build step, no dependency.
//
//   import { Tree, View, follow } from "/static/ait.js";
//   const tree = new Tree();
//   const view = new View(tree, { window: 50 });
//   view.onChange((change) => render(view.messages));
//   const stream = follow("/channels/chat-1/events", { tree });   // or tree.apply(entries)
//   view.siblings(id); view.selectedIndex(id); view.select(id, 1); view.revealOlder(20);
//
// It mirrors the Python fold module for module, with the same names: message (MessageState,
// the snapshots), runs (RunNode, cancelApplies), structure (order and sibling groups),
// selection (a view's choices), tree (Tree), view (View). Methods are camelCase; the data a
// UI reads (messages, runs, events) keeps the snake_case field names of the protocol and of
// the Python models (`message.run_id`, `run.cancel_requested`). Events are the JSON objects
// of docs/conformance.md: an event's fields and `payload`, or `{type: "bad-entry", reason}`.
// The rules are those of the Python modules; each is checked against the conformance
// corpus (conformance/logs) by js/test.

// -- entry ids -------------------------------------------------------------------------------

const INF = Infinity;

/** The sort key of an entry id `<ms>-<seq>`: [ms, seq]; null when it is not one. */
export function entryIdKey(entryId) {
  const match = typeof entryId === "string" ? /^(\d+)-(\d+)$/.exec(entryId) : null;
  return match ? [Number(match[1]), Number(match[2])] : null;
}

function cmp(a, b) {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1;
  return 0;
}

const OLDEST = [-INF, -INF];
const NEWEST = [INF, INF];

// -- codec events (ait/codec/chat.py) ---------------------------------------------------------

const CODEC_FIELDS = {
  start: [],
  "text-delta": [["id", "id"], ["delta", "str"]],
  "reasoning-delta": [["id", "id"], ["delta", "str"]],
  "tool-input-start": [["id", "id"], ["name", "id"]],
  "tool-input-delta": [["id", "id"], ["delta", "str"]],
  "tool-input-available": [["id", "id"], ["name", "id"]],
  "tool-output-available": [["id", "id"]],
  "tool-output-error": [["id", "id"], ["error", "str"]],
  "tool-approval-request": [["id", "id"]],
  "tool-approval-response": [["id", "id"], ["approved", "bool"]],
  data: [["id", "id"], ["name", "id"]],
  usage: [],
  metrics: [],
  finish: [],
  error: [["code", "id"], ["message", "str"]],
};
const AMENDMENT_TYPES = new Set(["tool-output-available", "tool-output-error", "tool-approval-response"]);
const FINISH_STATUSES = new Set(["complete", "cancelled", "error"]);

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function payloadProblem(payload) {
  if (!Array.isArray(payload)) return `payload must be a list of codec events, not ${typeName(payload)}`;
  for (const item of payload) {
    if (!isObject(item)) return `a codec event must be a map, not ${typeName(item)}`;
    const fields = CODEC_FIELDS[item.type];
    if (fields === undefined) return `unknown codec event type ${JSON.stringify(item.type)}`;
    for (const [name, kind] of fields) {
      const value = item[name];
      const ok = kind === "bool" ? typeof value === "boolean"
        : typeof value === "string" && (kind === "str" || value.length > 0);
      if (!ok) return `codec event ${item.type} needs ${name}`;
    }
    if (item.type === "finish" && item.status !== undefined && !FINISH_STATUSES.has(item.status)) {
      return `codec event finish has an unknown status ${JSON.stringify(item.status)}`;
    }
  }
  return null;
}

function typeName(value) {
  return value === null ? "None" : Array.isArray(value) ? "list" : typeof value;
}

// -- transport events (ait/events.py) ---------------------------------------------------------

const REQUIRED = {
  input: ["event_id", "message_id", "role", "client_id"],
  "run.start": ["run_id", "invocation_id", "input_event_id", "input_message_id", "run_client_id"],
  "run.resume": ["run_id", "invocation_id", "input_event_id", "input_message_id", "run_client_id"],
  "run.suspend": ["run_id", "invocation_id"],
  "run.end": ["run_id", "invocation_id", "reason"],
  output: ["run_id", "message_id", "role", "parent"],
  cancel: ["event_id", "client_id"],
};
const OPTIONAL = ["parent", "fork_of", "regenerate", "run_id", "input_message_id", "error_code", "error_message", "entry_key"];

function eventProblem(event) {
  if (!isObject(event)) return "an event must be an object";
  const required = REQUIRED[event.type];
  if (required === undefined) return `unknown event type ${JSON.stringify(event.type)}`;
  for (const name of required) {
    if (typeof event[name] !== "string" || !event[name]) return `${event.type} needs ${name}`;
  }
  for (const name of OPTIONAL) {
    const value = event[name];
    if (value != null && (typeof value !== "string" || !value)) return `${event.type}: bad ${name}`;
  }
  if (event.type === "run.end") {
    if (!FINISH_STATUSES.has(event.reason)) return `run.end: unknown reason ${event.reason}`;
    if (event.reason === "error" && (event.error_code == null || event.error_message == null)) {
      return "run.end with reason 'error' needs error-code and error-message";
    }
  }
  if (event.type === "cancel") {
    const targets = [event.run_id, event.input_message_id, event.scope].filter((x) => x != null);
    if (targets.length !== 1) return "cancel needs exactly one of run-id, input-message-id or scope";
    if (event.scope != null && event.scope !== "client" && event.scope !== "all") return "cancel: bad scope";
  }
  return null;
}

/** `payload[key]` when it is a list of non-empty strings, else []. */
function idList(payload, key) {
  if (!isObject(payload)) return [];
  const items = payload[key];
  if (!Array.isArray(items) || !items.every((x) => typeof x === "string" && x)) return [];
  return [...items];
}

// -- message (ait/conversation/message.py) ----------------------------------------------------

const TERMINAL = new Set(["complete", "cancelled", "error"]);
const ANSWERED = new Set(["output-available", "output-error"]);

class PartState {
  constructor(kind, id) {
    Object.assign(this, {
      kind, id, chunks: [], input_chunks: [], name: "", state: "input-streaming", input: null,
      output: null, error: null, approval: null, approval_reason: null, data: null,
    });
  }

  snapshot() {
    if (this.kind === "text" || this.kind === "reasoning") {
      return { type: this.kind, id: this.id, text: this.chunks.join("") };
    }
    if (this.kind === "data") return { type: "data", id: this.id, name: this.name, data: this.data };
    return {
      type: "tool-call", id: this.id, name: this.name, state: this.state,
      input_text: this.input_chunks.join(""), input: this.input, output: this.output,
      error: this.error, approval: this.approval, approval_reason: this.approval_reason,
    };
  }
}

function tool(m, e) {
  const part = m.part("tool", e.id);
  if (e.name) part.name = e.name;
  return part;
}

function merged(current, e) {
  const out = { ...(current || {}) };
  for (const [k, v] of Object.entries(e)) if (k !== "type" && v != null) out[k] = v;
  return out;
}

const APPLY = {
  start(m, e) { if (e.metadata && Object.keys(e.metadata).length) m.metadata = { ...(m.metadata || {}), ...e.metadata }; },
  "text-delta"(m, e) { m.part("text", e.id).chunks.push(e.delta); },
  "reasoning-delta"(m, e) { m.part("reasoning", e.id).chunks.push(e.delta); },
  "tool-input-start"(m, e) { tool(m, e).state = "input-streaming"; },
  "tool-input-delta"(m, e) { tool(m, e).input_chunks.push(e.delta); },
  "tool-input-available"(m, e) {
    const part = tool(m, e);
    part.input = e.input === undefined ? null : e.input;
    if (part.state === "input-streaming") part.state = "input-available";
  },
  // A call has one result and one approval answer: the first on the channel.
  "tool-output-available"(m, e) {
    const part = tool(m, e);
    if (ANSWERED.has(part.state)) return;
    part.output = e.output === undefined ? null : e.output;
    part.state = "output-available";
  },
  "tool-output-error"(m, e) {
    const part = tool(m, e);
    if (ANSWERED.has(part.state)) return;
    part.error = e.error;
    part.state = "output-error";
  },
  "tool-approval-request"(m, e) {
    const part = tool(m, e);
    if (part.approval === null) part.approval = "requested";
  },
  "tool-approval-response"(m, e) {
    const part = tool(m, e);
    if (part.approval === "approved" || part.approval === "denied") return;
    part.approval = e.approved ? "approved" : "denied";
    part.approval_reason = e.reason == null ? null : e.reason;
  },
  data(m, e) {
    const part = m.part("data", e.id);
    part.name = e.name;
    part.data = e.data === undefined ? null : e.data;
  },
  usage(m, e) { m.usage = merged(m.usage, e); },
  metrics(m, e) { m.metrics = merged(m.metrics, e); },
  finish(m, e) {
    m.finish_reason = e.finish_reason == null ? null : e.finish_reason;
    if (m.status !== "error") m.status = e.status || "complete";
  },
  error(m, e) {
    m.error = { code: e.code, message: e.message };
    m.status = "error";
  },
};

/** The fold of one message id's codec events, segment by entry, in entry order. */
class MessageState {
  constructor(id, role = "assistant", isInput = false) {
    this.id = id;
    this.role = role;
    this.is_input = isInput;
    this.run_id = null;
    this.parent = null;
    this.client_id = null;
    this.optimistic = false;
    this.keys = [];
    this.contents = [];
    this.last = null;
    this.reset();
  }

  reset() {
    this.parts = new Map();
    this.status = this.is_input ? "complete" : "streaming";
    this.finish_reason = null;
    this.usage = null;
    this.metrics = null;
    this.error = null;
    this.metadata = null;
  }

  get firstKey() {
    return this.keys.length ? this.keys[0] : null;
  }

  segment(key) {
    const index = this.keys.findIndex((k) => cmp(k, key) === 0);
    return index < 0 ? null : this.contents[index];
  }

  segments() {
    return this.keys.map((k, i) => [k, this.contents[i]]);
  }

  setSegments(segments) {
    segments.sort((a, b) => cmp(a[0], b[0]));
    this.keys = segments.map((s) => s[0]);
    this.contents = segments.map((s) => s[1]);
    this.reset();
    this.last = this.keys.length ? this.keys[this.keys.length - 1] : null;
    for (const events of this.contents) for (const e of events) APPLY[e.type](this, e);
  }

  add(key, events) {
    if (this.last === null || cmp(key, this.last) > 0) {
      this.keys.push(key);
      this.contents.push(events);
      this.last = key;
      for (const e of events) APPLY[e.type](this, e);
      return;
    }
    this.setSegments([...this.segments(), [key, events]]);
  }

  rekey(old, key) {
    this.setSegments(this.segments().map(([k, e]) => [cmp(k, old) === 0 ? key : k, e]));
  }

  replace(key, events) {
    this.setSegments([...this.segments().filter(([k]) => cmp(k, key) !== 0), [key, events]]);
  }

  drop(key) {
    this.setSegments(this.segments().filter(([k]) => cmp(k, key) !== 0));
  }

  part(kind, id) {
    let part = this.parts.get(id);
    if (part === undefined || part.kind !== kind) {
      part = new PartState(kind, id);
      this.parts.set(id, part);
    }
    return part;
  }

  /** The message now (a plain object); a run that ended leaves no message `streaming`. */
  snapshot(runStatus = null) {
    let status = this.status;
    if (status === "streaming" && TERMINAL.has(runStatus)) status = runStatus;
    const parts = [...this.parts.values()].map((p) => p.snapshot());
    return {
      id: this.id, role: this.role, parts, status,
      text: parts.filter((p) => p.type === "text").map((p) => p.text).join(""),
      finish_reason: this.finish_reason, usage: this.usage, metrics: this.metrics,
      error: this.error, metadata: this.metadata, run_id: this.run_id, parent: this.parent,
      client_id: this.client_id, optimistic: this.optimistic,
    };
  }
}

// -- runs (ait/conversation/runs.py) ----------------------------------------------------------

class RunNode {
  constructor(runId) {
    this.run_id = runId;
    this.start = null;
    this.startKey = null;
    this.firstKey = null;
    this.lifecycle = [];
    this.status = "pending";
    this.error = null;
    this.messages = [];
    this.outputParent = null;
    this.cancelRequested = false;
    this.awaiting = [];
    this.endKey = null;
  }

  /** The message this run answers: from run.start, else its first output's parent. */
  get anchor() {
    if (this.start !== null) return this.start.parent || this.start.input_message_id;
    return this.outputParent;
  }

  get key() {
    return this.startKey || this.firstKey || NEWEST;
  }

  /** Fold the lifecycle in entry order (arrival order must not matter). */
  recompute() {
    this.lifecycle.sort((a, b) => cmp(a[0], b[0]));
    let status = this.start !== null || this.messages.length ? "active" : "pending";
    let error = null;
    let awaiting = [];
    let endKey = null;
    for (const [key, event] of this.lifecycle) {
      if (event.type === "run.suspend") {
        if (status === "active" || status === "pending") {
          status = "suspended";
          awaiting = idList(event.payload, "awaiting");
        }
      } else if (event.type === "run.resume") {
        if (status === "suspended") status = "active";
      } else if (event.type === "run.end" && !TERMINAL.has(status)) {
        status = event.reason;
        endKey = key;
        if (event.reason === "error") {
          error = { code: event.error_code || "error", message: event.error_message || "" };
        }
      }
    }
    this.status = status;
    this.error = error;
    this.endKey = endKey;
    this.awaiting = status === "suspended" ? awaiting : [];
  }

  info() {
    const start = this.start;
    let invocation = start ? start.invocation_id : null;
    for (const [, event] of this.lifecycle) invocation = event.invocation_id;
    return {
      run_id: this.run_id, status: this.status, started: start !== null,
      client_id: start ? start.run_client_id : null, invocation_id: invocation,
      input_event_id: start ? start.input_event_id : null,
      input_message_id: start ? start.input_message_id : null,
      parent: this.anchor, regenerate: start ? start.regenerate || null : null,
      error: this.error, message_ids: [...this.messages],
      cancel_requested: this.cancelRequested, awaiting: [...this.awaiting],
    };
  }
}

/**
 * Whether `cancel`, on the channel at entry key `at`, asks to stop a run: after the run's
 * input (`after`), before its end (`before`), naming it by run id, input message id, its
 * client (`scope: "client"`) or `scope: "all"`. The one rule of docs/concepts/runs.md.
 */
export function cancelApplies(cancel, at, { runId, inputMessageId, clientId, after, before = null }) {
  if (!(cmp(after, at) < 0) || (before !== null && !(cmp(at, before) < 0))) return false;
  if (cancel.run_id != null) return cancel.run_id === runId;
  if (cancel.input_message_id != null) return cancel.input_message_id === inputMessageId;
  if (cancel.scope === "client") return clientId != null && cancel.client_id === clientId;
  return cancel.scope === "all";
}

function targets(cancel, key, run, inputKey) {
  const start = run.start;
  return cancelApplies(cancel, key, {
    runId: run.run_id,
    inputMessageId: start ? start.input_message_id : null,
    clientId: start ? start.run_client_id : null,
    after: inputKey !== null ? inputKey : OLDEST,
    before: run.endKey,
  });
}

// -- structure (ait/conversation/structure.py) ------------------------------------------------

// A group key: "edit\n<root input message id>" or "regen\n<anchor message id>".
const groupKey = (kind, id) => `${kind}\n${id}`;
const groupKind = (group) => group.slice(0, group.indexOf("\n"));

class Structure {
  constructor(tree) {
    this.tree = tree;
    this.key = new Map();
    this.order = [];
    this.groupOfInput = new Map();
    this.groupOfRun = new Map();
    this.members = new Map();
    this.up = new Map();
    this.group = new Map(); // message id -> [group, member] or null
    this.version = 0;
  }

  rebuild() {
    const tree = this.tree;
    this.version += 1;
    const key = (this.key = new Map());
    for (const [mid, node] of tree.inputNodes) key.set(mid, node.key);
    for (const run of tree.runNodes.values()) {
      for (const mid of run.messages) key.set(mid, tree.messageKey(mid));
    }
    this.order = [...key.keys()].sort((a, b) => cmp(key.get(a), key.get(b)));
    this.groupOfInput = new Map();
    this.groupOfRun = new Map();
    this.members = new Map();
    this.up = new Map();
    this.group = new Map();
    const addMember = (group, member) => {
      if (!this.members.has(group)) this.members.set(group, []);
      this.members.get(group).push(member);
    };
    for (const [mid, node] of tree.inputNodes) {
      const group = groupKey("edit", this.root(mid));
      this.groupOfInput.set(mid, group);
      addMember(group, mid);
      this.up.set(mid, node.event.parent ?? null);
      this.group.set(mid, [group, mid]);
    }
    const runKeys = new Map();
    for (const run of tree.runNodes.values()) {
      const group = this.runGroup(run);
      if (group !== null) {
        addMember(group, run.run_id);
        runKeys.set(run.run_id, run.key);
      }
      for (const mid of run.messages) {
        this.up.set(mid, run.anchor);
        this.group.set(mid, group ? [group, run.run_id] : null);
      }
    }
    for (const [group, members] of this.members) {
      const keys = groupKind(group) === "edit" ? key : runKeys;
      members.sort((a, b) => cmp(keys.get(a), keys.get(b)));
    }
  }

  runGroup(run) {
    const anchor = run.anchor;
    if (anchor == null || !run.messages.length) return null;
    const group = groupKey("regen", anchor);
    this.groupOfRun.set(run.run_id, group);
    return group;
  }

  isLast(key) {
    return !this.order.length || cmp(key, this.key.get(this.order[this.order.length - 1])) > 0;
  }

  appendInput(mid) {
    const node = this.tree.inputNodes.get(mid);
    if (!this.isLast(node.key) || node.event.fork_of != null) return false;
    if (this.tree.forkTargets.has(mid)) return false;
    const group = groupKey("edit", mid);
    this.key.set(mid, node.key);
    this.order.push(mid);
    this.groupOfInput.set(mid, group);
    this.members.set(group, [mid]);
    this.up.set(mid, node.event.parent ?? null);
    this.group.set(mid, [group, mid]);
    return true;
  }

  startRun(run) {
    return !run.messages.length;
  }

  appendRunMessage(run, mid) {
    const key = this.tree.messageKey(mid);
    if (!this.isLast(key)) return false;
    let group = this.groupOfRun.get(run.run_id);
    if (group === undefined) {
      if (run.anchor == null) return false;
      group = groupKey("regen", run.anchor);
      if (this.members.get(group)?.length) return false;
      this.groupOfRun.set(run.run_id, group);
      this.members.set(group, [run.run_id]);
    } else if (run.messages[0] === mid) {
      return false;
    }
    this.key.set(mid, key);
    this.order.push(mid);
    this.up.set(mid, run.anchor);
    this.group.set(mid, [group, run.run_id]);
    return true;
  }

  root(mid) {
    const inputs = this.tree.inputNodes;
    const path = [];
    const seen = new Set();
    let current = mid;
    for (;;) {
      path.push(current);
      seen.add(current);
      const node = inputs.get(current);
      const target = node.event.fork_of;
      if (target == null || !inputs.has(target)) return current;
      if ((inputs.get(target).event.parent ?? null) !== (node.event.parent ?? null)) return current;
      if (seen.has(target)) {
        const cycle = path.slice(path.indexOf(target));
        return cycle.reduce((a, b) => (cmp(inputs.get(b).key, inputs.get(a).key) < 0 ? b : a));
      }
      current = target;
    }
  }
}

// -- tree (ait/conversation/tree.py) ----------------------------------------------------------

class InputNode {
  constructor(event, key, entryId, kind, seq) {
    this.event = event;
    this.key = key;
    this.entryId = entryId; // null: optimistic, not echoed yet
    this.kind = kind; // "message" | "amend" | "regenerate"
    this.seq = seq;
  }
}

/**
 * The fold of one channel: every message of every branch. `apply(entries)` folds a batch of
 * `[entryId, event]` pairs (or `{id, event}` objects) and returns the entries it could not
 * fold, as `{entry_id, reason}`; the rest of the batch applies. Idempotent, and any arrival
 * order gives the same tree.
 */
export class Tree {
  constructor({ onError = null } = {}) {
    this.onError = onError;
    this.applied = new Set();
    /** Resend key k (`entry_key`) -> [entry key, message or run id] of the entry that counts. */
    this.keyed = new Map();
    this.inputNodes = new Map();
    this.byEvent = new Map();
    this.runNodes = new Map();
    this.states = new Map();
    this.runOfMessage = new Map();
    this.optimisticSeq = 0;
    this.listeners = [];
    this.reshape = false;
    this.growth = [];
    this.changed = new Set();
    this.cancels = [];
    this.forkTargets = new Set();
    /** True once the oldest entry of the channel has been folded (the reader sets it). */
    this.historyComplete = false;
    this.structure = new Structure(this);
  }

  addListener(listener) {
    this.listeners.push(listener);
  }

  removeListener(listener) {
    this.listeners = this.listeners.filter((l) => l !== listener);
  }

  notify() {
    let reshape = this.reshape;
    const growth = this.growth;
    const changed = this.changed;
    if (!reshape && !growth.length && !changed.size) return;
    this.reshape = false;
    this.growth = [];
    this.changed = new Set();
    let appended = [];
    const structure = this.structure;
    for (const [kind, runId, mid] of reshape ? [] : growth) {
      let done;
      if (kind === "input") done = structure.appendInput(mid);
      else if (kind === "start") done = structure.startRun(this.runNodes.get(runId));
      else done = structure.appendRunMessage(this.runNodes.get(runId), mid);
      if (!done) {
        reshape = true;
        break;
      }
      if (mid) appended.push(mid);
    }
    if (reshape) {
      structure.rebuild();
      appended = [];
    }
    for (const listener of [...this.listeners]) listener.treeChanged(reshape, appended, changed);
  }

  apply(entries) {
    const errors = [];
    for (const entry of entries) {
      const [entryId, event] = Array.isArray(entry) ? entry : [entry.id, entry.event];
      const error = this.applyEntry(entryId, event);
      if (error !== null) errors.push(error);
    }
    this.notify();
    for (const error of errors) if (this.onError) this.onError(error);
    return errors;
  }

  applyOne(entryId, event) {
    return this.apply([[entryId, event]])[0] || null;
  }

  applyEntry(entryId, event) {
    if (this.applied.has(entryId)) return null;
    const key = entryIdKey(entryId);
    if (key === null) return { entry_id: entryId, reason: `not a stream entry id: ${JSON.stringify(entryId)}` };
    if (isObject(event) && event.type === "bad-entry") {
      this.applied.add(entryId);
      return { entry_id: entryId, reason: String(event.reason) };
    }
    let problem = eventProblem(event);
    if (problem === null) {
      try {
        const resend = event.entry_key;
        if (resend !== undefined && resend !== null && event.type !== "input") {
          const seen = this.keyed.get(resend);
          if (seen === undefined) {
            const target = event.type === "output" ? event.message_id : event.run_id;
            this.keyed.set(resend, [key, target || ""]);
          } else if (!this.retake(resend, seen, key, event)) {
            this.applied.add(entryId);
            return null; // the same entry written again: the first one counts
          }
        }
        problem = this.fold(entryId, key, event);
      } catch (exc) {
        problem = `fold failed: ${exc && exc.name}: ${exc && exc.message}`;
      }
    }
    this.applied.add(entryId);
    return problem ? { entry_id: entryId, reason: problem } : null;
  }

  /**
   * A resend key met before, at `seen`: false when `event` (at `key`) is a later copy; else
   * the copy folded first (history read out of order) is taken back, and the earlier entry
   * is recorded to be folded in its place.
   */
  retake(resend, seen, key, event) {
    if (cmp(seen[0], key) <= 0) return false;
    this.unfold(seen[0], seen[1], event);
    this.keyed.set(resend, [key, seen[1]]);
    return true;
  }

  /** Take back what the entry at `key` (a later copy of `event`) folded into `target`. */
  unfold(key, target, event) {
    if (event.type === "output") {
      const state = this.states.get(target);
      if (state !== undefined && state.segment(key) !== null) {
        state.drop(key);
        this.reshape = true;
        this.changed.add(target);
      }
    } else if (event.type === "cancel") {
      this.cancels = this.cancels.filter(([k]) => cmp(k, key) !== 0);
      for (const run of this.runNodes.values()) this.markCancel(run);
    } else {
      const run = this.runNodes.get(target);
      if (run !== undefined) {
        if (run.startKey !== null && cmp(run.startKey, key) === 0) {
          run.start = run.startKey = null; // the earlier copy takes its place
          this.reshape = true;
        }
        run.lifecycle = run.lifecycle.filter(([k]) => cmp(k, key) !== 0);
        run.recompute();
        for (const mid of run.messages) this.changed.add(mid);
      }
    }
  }

  /**
   * True for an entry the fold ignores as a copy of an earlier one (same resend key). Live, in
   * entry order, a copy always comes after the entry it repeats, so a reader acting on entries
   * as they come asks this after `apply` to skip copies as the tree does.
   */
  isResend(entryId, event) {
    const resend = isObject(event) ? event.entry_key : undefined;
    if (resend === undefined || resend === null || event.type === "input") return false;
    const seen = this.keyed.get(resend);
    const key = entryIdKey(entryId);
    return seen !== undefined && key !== null && cmp(seen[0], key) < 0;
  }

  fold(entryId, key, event) {
    switch (event.type) {
      case "output": return this.foldOutput(key, event);
      case "input": return this.foldInput(entryId, key, event);
      case "cancel": this.foldCancel(key, event); return null;
      default: return this.foldLifecycle(key, event);
    }
  }

  foldOutput(key, event) {
    const payload = event.payload === undefined ? [] : event.payload;
    const problem = payloadProblem(payload);
    if (problem) return problem;
    const mid = event.message_id;
    const owner = this.runOfMessage.get(mid);
    if (owner !== undefined && owner !== event.run_id) {
      return `message '${mid}' belongs to run '${owner}', not '${event.run_id}'`;
    }
    if (this.inputNodes.has(mid)) return `message '${mid}' is an input, not an output of run '${event.run_id}'`;
    const run = this.run(event.run_id, key);
    let state = this.states.get(mid);
    if (state === undefined) {
      state = new MessageState(mid, event.role);
      this.states.set(mid, state);
    }
    const isNew = owner === undefined;
    const older = !isNew && cmp(key, this.firstKeyOf(mid)) < 0;
    if (isNew) {
      this.runOfMessage.set(mid, event.run_id);
      run.messages.push(mid);
    }
    if (isNew || older) {
      state.role = event.role;
      state.run_id = event.run_id;
      state.parent = event.parent;
    }
    state.add(key, payload);
    if (isNew || older) {
      run.messages.sort((a, b) => cmp(this.firstKeyOf(a), this.firstKeyOf(b)));
      run.outputParent = this.states.get(run.messages[0]).parent;
      if (older) this.reshape = true;
      else this.growth.push(["message", run.run_id, mid]);
    }
    this.changed.add(mid);
    if (run.status === "pending") run.recompute();
    return null;
  }

  firstKeyOf(mid) {
    return this.states.get(mid).firstKey || NEWEST;
  }

  run(runId, key) {
    let run = this.runNodes.get(runId);
    if (run === undefined) {
      run = new RunNode(runId);
      this.runNodes.set(runId, run);
    }
    if (run.firstKey === null || cmp(key, run.firstKey) < 0) {
      run.firstKey = key;
      if (this.cancels.length) this.markCancel(run);
    }
    return run;
  }

  foldInput(entryId, key, event) {
    const events = event.payload == null ? [] : event.payload;
    const problem = payloadProblem(events);
    if (problem) return problem;
    let kind;
    if (event.regenerate != null) kind = "regenerate";
    else if (events.length && events.every((e) => AMENDMENT_TYPES.has(e.type))) kind = "amend";
    else kind = "message";
    const existing = this.byEvent.get(event.event_id);
    if (existing !== undefined) {
      if (existing.entryId === null) {
        const result = this.promote(existing, event, key, entryId);
        this.markCancelsOfInput(event.event_id);
        return result;
      }
      if (cmp(existing.key, key) <= 0) return null;
      if (existing.kind === "amend" && this.states.has(event.message_id)) {
        this.states.get(event.message_id).drop(existing.key);
      }
    }
    const node = new InputNode(event, key, entryId, kind, 0);
    this.byEvent.set(event.event_id, node);
    this.markCancelsOfInput(event.event_id);
    if (kind === "message") return this.addInputMessage(node, events);
    if (kind === "amend") this.amend(event.message_id, key, events);
    return null;
  }

  addInputMessage(node, events) {
    const event = node.event;
    const mid = event.message_id;
    if (this.runOfMessage.has(mid)) return `input message id '${mid}' is already an output message`;
    const current = this.inputNodes.get(mid);
    if (current !== undefined && cmp(current.key, node.key) <= 0) return null;
    this.inputNodes.set(mid, node);
    let state = this.states.get(mid);
    if (state === undefined || current !== undefined) {
      state = new MessageState(mid, event.role, true);
      this.states.set(mid, state);
    }
    state.role = event.role;
    state.parent = event.parent ?? null;
    state.client_id = event.client_id;
    state.optimistic = node.entryId === null;
    state.add(node.key, events);
    if (event.fork_of != null) this.forkTargets.add(event.fork_of);
    if (current !== undefined) this.reshape = true;
    else this.growth.push(["input", "", mid]);
    this.changed.add(mid);
    return null;
  }

  amend(mid, key, events) {
    let state = this.states.get(mid);
    if (state === undefined) {
      state = new MessageState(mid);
      this.states.set(mid, state);
    }
    state.add(key, events);
    this.changed.add(mid);
  }

  promote(node, echo, key, entryId) {
    const old = node.key;
    node.event = echo;
    node.key = key;
    node.entryId = entryId;
    if (node.kind === "message") {
      const state = this.states.get(echo.message_id);
      state.optimistic = false;
      const payload = echo.payload || [];
      state.rekey(old, key);
      if (JSON.stringify(payload) !== JSON.stringify(state.segment(key))) state.replace(key, payload);
      this.reshape = true;
      this.changed.add(echo.message_id);
    } else if (node.kind === "amend") {
      const state = this.states.get(echo.message_id);
      if (state !== undefined) {
        state.rekey(old, key);
        this.changed.add(echo.message_id);
      }
    }
    return null;
  }

  foldLifecycle(key, event) {
    const run = this.run(event.run_id, key);
    if (event.type === "run.start") {
      if (run.start !== null && run.startKey !== null && cmp(run.startKey, key) <= 0) return null;
      if (run.start !== null) this.reshape = true;
      else this.growth.push(["start", run.run_id, ""]);
      run.start = event;
      run.startKey = key;
    } else {
      run.lifecycle.push([key, event]);
    }
    const before = run.status;
    run.recompute();
    if (this.cancels.length) this.markCancel(run);
    if (run.status !== before) for (const mid of run.messages) this.changed.add(mid);
    return null;
  }

  foldCancel(key, event) {
    this.cancels.push([key, event]);
    for (const run of this.runNodes.values()) this.markCancel(run);
  }

  markCancelsOfInput(eventId) {
    if (!this.cancels.length) return;
    for (const run of this.runNodes.values()) {
      if (run.start !== null && run.start.input_event_id === eventId) this.markCancel(run);
    }
  }

  markCancel(run) {
    const node = run.start !== null ? this.byEvent.get(run.start.input_event_id) : undefined;
    const inputKey = node !== undefined && node.entryId !== null ? node.key : null;
    const requested = this.cancels.some(([key, event]) => targets(event, key, run, inputKey));
    if (requested !== run.cancelRequested) {
      run.cancelRequested = requested;
      for (const mid of run.messages) this.changed.add(mid);
    }
  }

  /** Forget everything (the channel's stream began again); views follow. */
  clear() {
    for (const name of ["applied", "inputNodes", "byEvent", "runNodes", "states", "runOfMessage", "forkTargets"]) {
      this[name].clear();
    }
    this.keyed.clear();
    this.cancels = [];
    this.historyComplete = false;
    this.growth = [];
    this.reshape = true;
    this.notify();
  }

  /** Show an input this client is publishing before the channel echoes it. */
  addOptimistic(event) {
    if (this.byEvent.has(event.event_id)) return;
    const payload = event.payload || [];
    const problem = eventProblem(event) || payloadProblem(payload);
    if (problem) throw new Error(problem);
    if (event.regenerate != null || (payload.length && payload.every((e) => AMENDMENT_TYPES.has(e.type)))) return;
    this.optimisticSeq += 1;
    const node = new InputNode(event, [INF, this.optimisticSeq], null, "message", this.optimisticSeq);
    this.byEvent.set(event.event_id, node);
    this.addInputMessage(node, payload);
    this.notify();
  }

  /** Take back an optimistic input whose publish failed. */
  removeOptimistic(eventId) {
    const node = this.byEvent.get(eventId);
    if (node === undefined || node.entryId !== null) return;
    this.byEvent.delete(eventId);
    if (this.inputNodes.get(node.event.message_id) === node) {
      this.inputNodes.delete(node.event.message_id);
      this.states.delete(node.event.message_id);
      this.reshape = true;
    }
    this.notify();
  }

  /** The message with this id, as it stands now, or null. */
  message(mid) {
    return this.states.has(mid) && this.isPlaced(mid) ? this.snapshot(mid) : null;
  }

  snapshot(mid) {
    const runId = this.runOfMessage.get(mid);
    return this.states.get(mid).snapshot(runId !== undefined ? this.runNodes.get(runId).status : null);
  }

  isPlaced(mid) {
    return this.inputNodes.has(mid) || this.runOfMessage.has(mid);
  }

  /** The run with this id, as it stands now, or null. */
  runInfo(runId) {
    const run = this.runNodes.get(runId);
    return run === undefined ? null : run.info();
  }

  /** Every run, oldest first. */
  runs() {
    return [...this.runNodes.values()].sort((a, b) => cmp(a.key, b.key)).map((r) => r.info());
  }

  /** The newest run started for the input with this message id, or null. */
  runForInput(inputMessageId) {
    let found = null;
    for (const run of this.runNodes.values()) {
      if (run.start !== null && run.start.input_message_id === inputMessageId) {
        if (found === null || cmp(run.key, found.key) > 0) found = run;
      }
    }
    return found === null ? null : found.info();
  }

  /** The previous message on the branch. */
  parentOf(mid) {
    const node = this.inputNodes.get(mid);
    if (node !== undefined) return node.event.parent ?? null;
    const runId = this.runOfMessage.get(mid);
    if (runId === undefined) return null;
    const run = this.runNodes.get(runId);
    const index = run.messages.indexOf(mid);
    return index > 0 ? run.messages[index - 1] : run.anchor;
  }

  /** The messages leading to `mid` (included), oldest first. */
  pathTo(mid) {
    const chain = [];
    const seen = new Set();
    let current = mid;
    while (current != null && !seen.has(current) && this.isPlaced(current)) {
      seen.add(current);
      chain.push(this.snapshot(current));
      current = this.parentOf(current);
    }
    return chain.reverse();
  }

  get size() {
    return this.inputNodes.size + this.runOfMessage.size;
  }

  messageKey(mid) {
    const node = this.inputNodes.get(mid);
    return node !== undefined ? node.key : this.firstKeyOf(mid);
  }

  runOf(mid) {
    return this.runOfMessage.get(mid) ?? null;
  }
}

// -- selection (ait/conversation/selection.py) ------------------------------------------------

function restarts(run, other) {
  return run !== other && run.start !== null && other.start !== null
    && run.start.input_event_id === other.start.input_event_id && cmp(run.key, other.key) > 0;
}

class Selection {
  constructor(tree) {
    this.tree = tree;
    this.explicit = new Map();
    this.displayed = new Map();
    this.edits = new Set();
    this.regenerations = new Map();
    this.choices = 0;
    this.chosenAt = new Map();
    this.knownRuns = new Set();
  }

  choice(group) {
    const members = this.tree.structure.members.get(group);
    const chosen = this.explicit.get(group);
    if (chosen !== undefined && members.includes(chosen)) return chosen;
    if (chosen !== undefined) this.explicit.delete(group);
    return members[members.length - 1];
  }

  choose(group, member) {
    this.choices += 1;
    this.chosenAt.set(group, this.choices);
    this.explicit.set(group, member);
  }

  expectEdit(mid) {
    this.edits.add(mid);
  }

  expectRegenerate(requestMid) {
    this.regenerations.set(requestMid, this.choices);
  }

  settle(structure) {
    for (const mid of [...this.edits]) {
      const group = structure.groupOfInput.get(mid);
      if (group !== undefined) {
        this.explicit.set(group, mid);
        this.edits.delete(mid);
      }
    }
    for (const [request, askedAt] of [...this.regenerations]) {
      const run = this.tree.runForInput(request);
      const group = run !== null ? structure.groupOfRun.get(run.run_id) : undefined;
      if (run === null || group === undefined) continue;
      this.regenerations.delete(request);
      if ((this.chosenAt.get(group) ?? -1) <= askedAt) this.explicit.set(group, run.run_id);
    }
    this.followRestarts(structure);
    for (const [group, member] of this.displayed) {
      const members = structure.members.get(group);
      if (!this.explicit.has(group) && members && members.slice(0, -1).includes(member)) {
        this.explicit.set(group, member);
      }
    }
  }

  followRestarts(structure) {
    const runs = this.tree.runNodes;
    const fresh = [...structure.groupOfRun.keys()].filter((r) => !this.knownRuns.has(r));
    this.knownRuns = new Set(structure.groupOfRun.keys());
    fresh.sort((a, b) => cmp(runs.get(a).key, runs.get(b).key));
    for (const runId of fresh) {
      const group = structure.groupOfRun.get(runId);
      const current = this.explicit.get(group) || this.displayed.get(group);
      if (current && runs.has(current) && restarts(runs.get(runId), runs.get(current))) {
        this.explicit.set(group, runId);
      }
    }
  }

  shown(displayed) {
    this.displayed = displayed;
  }

  shownAlso(group, member) {
    this.displayed.set(group, member);
    if (groupKind(group) === "regen") this.knownRuns.add(member);
  }
}

// -- view (ait/conversation/view.py) ----------------------------------------------------------

/**
 * A window onto a tree, with its own branch selection and paging. What it shows: every
 * message in entry order except those on branches it has not selected. See the Python
 * `ait.conversation.view` for the rules; they are the same.
 */
export class View {
  constructor(tree, { window = 50 } = {}) {
    if (!(window >= 1)) throw new Error(`a view's window must be at least 1 message, not ${window}`);
    this.tree = tree;
    this.initialWindow = window;
    this.selection = new Selection(tree);
    this.visible = [];
    this.fromId = null;
    this.shownIds = [];
    this.index = new Map();
    this.callbacks = [];
    this.closed = false;
    this.vis = new Map();
    this.arrows = new Map();
    tree.addListener(this);
    this.recompute();
    this.redrawArrows();
  }

  close() {
    if (!this.closed) {
      this.closed = true;
      this.tree.removeListener(this);
    }
  }

  requireOpen(action) {
    if (this.closed) throw new Error(`unable to ${action}; the view is closed`);
  }

  get structure() {
    return this.tree.structure;
  }

  /** The shown messages of the selected branch, oldest first. */
  get messages() {
    return this.shownIds.map((mid) => this.tree.snapshot(mid));
  }

  get messageIds() {
    return [...this.shownIds];
  }

  /** The newest message of the selected branch (the parent of the next send). */
  get lastMessageId() {
    return this.visible.length ? this.visible[this.visible.length - 1] : null;
  }

  /** True when older messages exist: folded but not shown, or not yet read. */
  get hasOlder() {
    return this.shownIds.length < this.visible.length || !this.tree.historyComplete;
  }

  /** Show up to `count` more of the older messages already folded; return how many. */
  revealOlder(count) {
    const hidden = this.visible.length - this.shownIds.length;
    const revealed = Math.min(Math.max(count, 0), hidden);
    if (revealed) {
      this.fromId = this.visible[hidden - revealed];
      this.refreshShown();
      this.redrawArrows();
      this.emit({ kind: "structure", message_ids: [...this.shownIds] });
    }
    return revealed;
  }

  /** The alternatives of a message, oldest first (itself alone when it has none). */
  siblings(mid) {
    const group = this.groupOf(mid);
    if (group === null) return [this.tree.snapshot(mid)];
    return this.representatives(group).map((m) => this.tree.snapshot(m));
  }

  /** The index in `siblings(mid)` of the alternative this view shows. */
  selectedIndex(mid) {
    const group = this.groupOf(mid);
    if (group === null) return 0;
    return this.structure.members.get(group).indexOf(this.selection.choice(group));
  }

  /** Show alternative `index` of `siblings(mid)` from now on. */
  select(mid, index) {
    const group = this.groupOf(mid);
    const representatives = group !== null ? this.representatives(group) : [mid];
    if (!(index >= 0 && index < representatives.length)) {
      throw new Error(`no sibling ${index} of message '${mid}'; it has ${representatives.length}`);
    }
    if (group === null) return;
    const chosen = representatives[index];
    const shownBefore = this.shownIds.length;
    this.selection.choose(group, this.structure.members.get(group)[index]);
    let changed = this.recompute();
    if (!this.index.has(chosen) && this.visible.includes(chosen)) {
      const count = Math.max(this.initialWindow, shownBefore);
      const start = Math.min(this.visible.indexOf(chosen), Math.max(0, this.visible.length - count));
      this.fromId = this.visible[start];
      changed = this.refreshShown() || changed;
    }
    this.report(changed, this.redrawArrows());
  }

  /** The parent of a new message sent from this view: its last message. */
  sendParent() {
    this.requireOpen("send");
    return this.lastMessageId;
  }

  /** [parent, fork_of] of an edit of input `mid`. */
  editTarget(mid) {
    this.requireOpen("edit");
    const node = this.tree.inputNodes.get(mid);
    if (node === undefined) throw new Error(`unable to edit '${mid}': it is not an input message`);
    return [node.event.parent ?? null, mid];
  }

  /** [run id, parent] of a regeneration of output `mid`. */
  regenerateTarget(mid) {
    this.requireOpen("regenerate");
    const runId = this.tree.runOf(mid);
    if (runId === null) throw new Error(`unable to regenerate '${mid}': it is not an agent's message`);
    return [runId, this.tree.runNodes.get(runId).anchor];
  }

  /** Select the edit `newMid` (this view's own) as soon as it is in the tree. */
  expectEdit(newMid) {
    this.requireOpen("edit");
    this.selection.expectEdit(newMid);
    this.report(this.recompute(), this.redrawArrows());
  }

  /** Select the run started for regenerate request `requestMid` when it has a message. */
  expectRegenerate(requestMid) {
    this.requireOpen("regenerate");
    this.selection.expectRegenerate(requestMid);
    this.report(this.recompute(), this.redrawArrows());
  }

  /** Call `callback({kind, message_ids})` on every change of what is shown; returns an unsubscribe. */
  onChange(callback) {
    this.callbacks.push(callback);
    return () => {
      this.callbacks = this.callbacks.filter((c) => c !== callback);
    };
  }

  emit(change) {
    for (const callback of [...this.callbacks]) callback(change);
  }

  treeChanged(reshaped, appended, messages) {
    let restructured;
    let redraw;
    if (reshaped || this.fromId === null) {
      restructured = this.recompute();
      redraw = this.redrawArrows();
    } else {
      const shown = appended.filter((mid) => this.append(mid));
      restructured = shown.length > 0;
      redraw = this.redrawArrows(shown);
    }
    for (const mid of messages) if (this.index.has(mid)) redraw.add(mid);
    this.report(restructured, redraw);
  }

  report(restructured, redraw) {
    if (restructured) {
      this.emit({ kind: "structure", message_ids: [...this.shownIds] });
    } else if (redraw.size) {
      const ids = [...redraw].sort((a, b) => this.index.get(a) - this.index.get(b));
      this.emit({ kind: "content", message_ids: ids });
    }
  }

  redrawArrows(mids = null) {
    const before = this.arrows;
    if (mids === null) {
      this.arrows = new Map();
      mids = this.shownIds;
    }
    const changed = new Set();
    for (const mid of mids) {
      const group = this.groupOf(mid);
      if (group === null) continue;
      const members = this.structure.members.get(group);
      const arrows = [members.indexOf(this.selection.choice(group)), members.length];
      const old = before.get(mid);
      if (old !== undefined && (old[0] !== arrows[0] || old[1] !== arrows[1])) changed.add(mid);
      this.arrows.set(mid, arrows);
    }
    return changed;
  }

  append(mid) {
    const structure = this.structure;
    const up = structure.up.get(mid) ?? null;
    const shown = up !== null ? this.vis.get(up) ?? true : true;
    this.vis.set(mid, shown);
    if (!shown) return false;
    const owner = structure.group.get(mid);
    if (owner) this.selection.shownAlso(owner[0], owner[1]);
    this.visible.push(mid);
    if (this.fromId === null && this.settled(mid)) this.fromId = mid;
    this.index.set(mid, this.shownIds.length);
    this.shownIds.push(mid);
    return true;
  }

  recompute() {
    const structure = this.structure;
    this.selection.settle(structure);
    const visible = this.visibleIds(structure);
    const displayed = new Map();
    for (const mid of visible) {
      const owner = structure.group.get(mid);
      if (owner) displayed.set(owner[0], owner[1]);
    }
    this.selection.shown(displayed);
    const changed = !sameList(visible, this.visible);
    this.visible = visible;
    if (this.fromId !== null && !structure.key.has(this.fromId)) {
      this.fromId = this.shownIds.find((m) => structure.key.has(m)) ?? null;
    }
    if (this.fromId === null) {
      const newest = visible.slice(Math.max(0, visible.length - this.initialWindow));
      this.fromId = newest.find((m) => this.settled(m)) ?? null;
    }
    return this.refreshShown() || changed;
  }

  settled(mid) {
    const node = this.tree.inputNodes.get(mid);
    return node === undefined || node.entryId !== null;
  }

  refreshShown() {
    const key = this.structure.key;
    const start = this.fromId !== null ? key.get(this.fromId) : undefined;
    const shown = start === undefined ? [...this.visible] : this.visible.filter((m) => cmp(key.get(m), start) >= 0);
    if (sameList(shown, this.shownIds)) return false;
    this.shownIds = shown;
    this.index = new Map(shown.map((mid, i) => [mid, i]));
    return true;
  }

  visibleIds(structure) {
    const memo = new Map();
    const { up, group: groupOf, key } = structure;
    const choices = new Map();
    const ownOk = (mid) => {
      const owner = groupOf.get(mid);
      if (!owner) return true;
      const [group, member] = owner;
      if (structure.members.get(group).length < 2) return true;
      let chosen = choices.get(group);
      if (chosen === undefined) {
        chosen = this.selection.choice(group);
        choices.set(group, chosen);
      }
      return chosen === member;
    };
    const visible = [];
    this.vis = memo;
    for (const mid of structure.order) {
      const path = [];
      const onPath = new Set();
      let current = mid;
      while (current != null && !memo.has(current) && key.has(current)) {
        if (onPath.has(current)) break;
        path.push(current);
        onPath.add(current);
        current = up.get(current) ?? null;
      }
      let result = current != null ? memo.get(current) ?? true : true;
      for (let i = path.length - 1; i >= 0; i--) {
        result = ownOk(path[i]) && result;
        memo.set(path[i], result);
      }
      if (memo.get(mid)) visible.push(mid);
    }
    return visible;
  }

  groupOf(mid) {
    const owner = this.structure.group.get(mid);
    if (!owner) {
      if (!this.tree.isPlaced(mid)) throw new Error(`no message '${mid}' in this conversation`);
      return null;
    }
    const [group, member] = owner;
    if (groupKind(group) === "regen" && this.tree.runNodes.get(member).messages[0] !== mid) return null;
    return group;
  }

  representatives(group) {
    const members = this.structure.members.get(group);
    if (groupKind(group) === "edit") return [...members];
    return members.map((runId) => this.tree.runNodes.get(runId).messages[0]);
  }
}

function sameList(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// -- network ----------------------------------------------------------------------------------

/**
 * Follow a channel's Server-Sent Events at `url`: each event's `data:` is an event as JSON
 * and its `id:` the entry id. Folds them into `tree` (when given) and calls `onEvent(entryId,
 * event)`. The browser's EventSource reconnects by itself, sending `Last-Event-ID`; when it
 * gives up (the server refused or closed for good), this opens it again after a pause,
 * doubling up to `maxDelay` ms, with `?after=<last entry id>` so that nothing is missed.
 * Returns `{close()}`.
 */
export function follow(url, { tree = null, onEvent = null, onError = null, after = null, maxDelay = 30000,
  EventSourceClass = globalThis.EventSource } = {}) {
  let last = after;
  let source = null;
  let closed = false;
  let delay = 500;
  let timer = null;
  const open = () => {
    const target = last === null ? url : `${url}${url.includes("?") ? "&" : "?"}after=${encodeURIComponent(last)}`;
    source = new EventSourceClass(target);
    source.onopen = () => { delay = 500; };
    source.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (exc) {
        event = { type: "bad-entry", reason: `not JSON: ${exc.message}` };
      }
      const entryId = message.lastEventId;
      if (entryId) last = entryId;
      if (tree !== null) tree.applyOne(entryId, event);
      if (onEvent !== null) onEvent(entryId, event);
    };
    source.onerror = (error) => {
      if (onError !== null) onError(error);
      if (closed || source.readyState !== 2) return; // 2: CLOSED; otherwise it retries itself
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, maxDelay);
    };
  };
  open();
  return {
    close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      if (source !== null) source.close();
    },
    get lastEntryId() {
      return last;
    },
  };
}
