// The chat page's pure helpers (no DOM): what to draw for a View, and the bodies of writes.
// chat.js draws these rows; js/test/chat-rows.test.js tests them under node.

/** The display rows of `view`: one per shown message, with its `<n/m>` branch label. */
export function displayRows(view) {
  return view.messages.map((message) => {
    const siblings = view.siblings(message.id);
    const index = siblings.length > 1 ? view.selectedIndex(message.id) : 0;
    const approvals = message.parts
      .filter((p) => p.type === "tool-call" && p.approval === "requested")
      .map((p) => ({ call_id: p.id, name: p.name, input: p.input }));
    return {
      id: message.id,
      role: message.role,
      text: message.text,
      status: message.status,
      pending: Boolean(message.optimistic),
      run_id: message.run_id ?? null,
      branch: siblings.length > 1 ? { index, count: siblings.length, label: `<${index + 1}/${siblings.length}>` } : null,
      canPrev: siblings.length > 1 && index > 0,
      canNext: siblings.length > 1 && index < siblings.length - 1,
      editable: message.role === "user",
      regenerable: message.role === "assistant" && message.run_id != null,
      approvals,
      tools: message.parts.filter((p) => p.type === "tool-call").map((p) => ({
        call_id: p.id, name: p.name, state: p.state, approval: p.approval,
      })),
    };
  });
}

/**
 * What Stop cancels: `{run_id}` of the newest run going, else `{input_message_id}` of the
 * message this tab sent last while no run has started for it yet, else null (nothing to stop).
 */
export function stopTarget(tree, lastSent = null) {
  const going = tree.runs().filter((r) => ["pending", "active", "suspended"].includes(r.status));
  if (going.length) return { run_id: going[going.length - 1].run_id };
  if (lastSent !== null && tree.runForInput(lastSent) === null) return { input_message_id: lastSent };
  return null;
}

/** The connection state shown for an EventSource `readyState` (0, 1, 2) and whether it was ever open. */
export function connectionState(readyState, wasOpen) {
  if (readyState === 1) return "live";
  if (readyState === 0) return wasOpen ? "reconnecting" : "connecting";
  return "reconnecting";
}

/** The saved conversation list: channel names, valid and unique, from localStorage text. */
export function parseChannels(text) {
  let names;
  try {
    names = JSON.parse(text ?? "[]");
  } catch {
    return [];
  }
  if (!Array.isArray(names)) return [];
  return [...new Set(names.filter((n) => typeof n === "string" && validChannel(n)))];
}

/** Whether `name` may be a channel name (letters, digits, `.`, `_`, `-`, `:`; 1 to 200). */
export function validChannel(name) {
  return /^[A-Za-z0-9._:-]{1,200}$/.test(name);
}
