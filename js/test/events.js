// Events for the tests that build a conversation by hand.
export const text = (delta) => [{ type: "text-delta", id: "t0", delta }];
export const user = (n, extra = {}) => ({
  type: "input", event_id: `e${n}`, message_id: `u${n}`, role: "user", client_id: "alice",
  payload: text(`question ${n}`), ...extra,
});
export const start = (run, n) => ({
  type: "run.start", run_id: run, invocation_id: "i", input_event_id: `e${n}`,
  input_message_id: `u${n}`, run_client_id: "alice", parent: `u${n}`,
});
