/** metav1.Condition rules the status writer depends on. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { eventTransitions, setConditions, transitions, sameConditions } from "../src/runner/conditions.js";

const t0 = new Date("2026-11-28T01:00:00.750Z");
const t1 = new Date("2026-11-28T02:00:00Z");

test("lastTransitionTime changes only when the status flips", () => {
  const first = setConditions(
    undefined,
    [{ type: "Ready", status: "False", reason: "WaitingForDataPlane", message: "0/2 pods" }],
    1,
    t0,
  );
  assert.equal(first[0]!.lastTransitionTime, "2026-11-28T01:00:00Z", "truncated to seconds");
  const same = setConditions(
    first,
    [{ type: "Ready", status: "False", reason: "WaitingForDataPlane", message: "1/2 pods" }],
    2,
    t1,
  );
  assert.equal(same[0]!.lastTransitionTime, "2026-11-28T01:00:00Z");
  assert.equal(same[0]!.message, "1/2 pods");
  assert.equal(same[0]!.observedGeneration, 2);
  const flipped = setConditions(
    same,
    [{ type: "Ready", status: "True", reason: "Serving", message: "2/2 pods" }],
    2,
    t1,
  );
  assert.equal(flipped[0]!.lastTransitionTime, "2026-11-28T02:00:00Z");
  assert.deepEqual(
    transitions(same, flipped).map((c) => c.type),
    ["Ready"],
  );
  assert.deepEqual(transitions(flipped, flipped), []);
});

test("conditions keep a stable order and unrelated ones are kept", () => {
  const a = setConditions(undefined, [{ type: "Ready", status: "True", reason: "R", message: "" }], 1, t0);
  const b = setConditions(a, [{ type: "Accepted", status: "True", reason: "Accepted", message: "" }], 1, t0);
  assert.deepEqual(
    b.map((c) => c.type),
    ["Accepted", "Ready"],
  );
  assert.ok(sameConditions(b, setConditions(b, [], 1, t1)));
});

test("long messages are truncated to the schema limit", () => {
  const c = setConditions(
    undefined,
    [{ type: "Accepted", status: "False", reason: "InvalidOptions", message: "x".repeat(40000) }],
    1,
    t0,
  );
  assert.ok(c[0]!.message.length <= 32768);
  assert.match(c[0]!.message, /\(truncated\)$/);
});

test("key order is not a change (the API server returns keys sorted)", () => {
  const ours = setConditions(undefined, [{ type: "Ready", status: "True", reason: "Serving", message: "1/1" }], 1, t0);
  const fromServer = ours.map((c) =>
    Object.fromEntries(Object.entries(c).sort(([a], [b]) => a.localeCompare(b))),
  ) as typeof ours;
  assert.notEqual(JSON.stringify(ours), JSON.stringify(fromServer));
  assert.ok(sameConditions(ours, fromServer));
});

test("a pipeline's or endpoint's Events: flips and first refusals, not its other first values", () => {
  const first = setConditions(
    undefined,
    [
      { type: "Accepted", status: "True", reason: "Accepted", message: "" },
      { type: "ResolvedRefs", status: "False", reason: "RefNotFound", message: "" },
      { type: "Programmed", status: "False", reason: "RefNotFound", message: "" },
      { type: "Ready", status: "False", reason: "WaitingForDataPlane", message: "" },
    ],
    1,
    t0,
  );
  assert.deepEqual(
    eventTransitions(undefined, first).map((c) => c.type),
    ["ResolvedRefs"],
  );
  assert.equal(transitions(undefined, first).length, 4, "a gateway's: every first value");
  const later = setConditions(
    first,
    [
      { type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "" },
      { type: "Ready", status: "False", reason: "WaitingForDataPlane", message: "1/2" },
    ],
    1,
    t1,
  );
  assert.deepEqual(
    eventTransitions(first, later).map((c) => c.type),
    ["ResolvedRefs"],
  );
  const refused = setConditions(undefined, [{ type: "Accepted", status: "False", reason: "X", message: "" }], 1, t0);
  assert.deepEqual(
    eventTransitions(undefined, refused).map((c) => c.type),
    ["Accepted"],
  );
});
