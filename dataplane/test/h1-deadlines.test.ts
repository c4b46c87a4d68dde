/**
 * The llhttp engine's one clock per pool (dataplane/src/http1/deadlines.ts), on its own: a deadline
 * never fires before its time, fires once, moves with refresh, goes with disarm, and the clock's
 * timer runs only while something is armed (an idle data plane must not wake up for it). Its use
 * by the engine (headers, body and idle timeouts) is checked against undici in
 * test/hostile/h1-upstream.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Deadlines, tickFor, type Expiring } from "../src/http1/deadlines.js";
import { eventually } from "./helpers.js";

/** An Expiring that records when it expired, relative to `t0`. */
function item(t0: number) {
  const it = {
    deadline: 0,
    fired: [] as number[],
    expire() {
      it.fired.push(performance.now() - t0);
    },
  };
  return it satisfies Expiring;
}

test("tickFor: a quarter of the shortest timeout in use, between 10 and 500 ms", () => {
  assert.equal(tickFor([5000, 30000, 30000, 4000]), 500);
  assert.equal(tickFor([5000, 400, 0, 300]), 75, "0 is 'no timeout', not the shortest");
  assert.equal(tickFor([20]), 10);
  assert.equal(tickFor([0, 0]), 500);
});

test("a deadline never fires early, fires once, and the timer stops when nothing is armed", async () => {
  const d = new Deadlines(tickFor([30, 120, 250]));
  const t0 = performance.now();
  const items = [30, 120, 250].map((ms) => {
    const it = item(t0);
    d.arm(it, ms);
    return { it, ms };
  });
  assert.ok(d.ticking);
  await eventually("all three deadlines fired", () => items.every(({ it }) => it.fired.length > 0));
  for (const { it, ms } of items) {
    assert.equal(it.fired.length, 1, `${ms} ms fired once`);
    assert.ok(it.fired[0]! >= ms, `${ms} ms fired after ${it.fired[0]!.toFixed(1)} ms`);
    assert.equal(it.deadline, 0);
  }
  await eventually("the clock's timer gone once nothing is armed", () => !d.ticking);
});

test("refresh moves an armed deadline; disarm cancels it; refresh does not re-arm a disarmed one", async () => {
  const d = new Deadlines(10);
  const t0 = performance.now();
  const later = item(t0);
  const sooner = item(t0);
  const cancelled = item(t0);
  d.arm(later, 20);
  d.arm(sooner, 60_000);
  d.arm(cancelled, 20);
  // No await in between: however loaded the box, nothing can have fired before these.
  const refreshedAt = performance.now() - t0;
  d.refresh(later, 300);
  d.refresh(sooner, 40);
  d.disarm(cancelled);
  d.refresh(cancelled, 20);
  await eventually("both refreshed deadlines fired", () => later.fired.length > 0 && sooner.fired.length > 0);
  assert.ok(later.fired[0]! >= refreshedAt + 300, `moved later: fired at ${later.fired[0]!.toFixed(1)} ms`);
  assert.ok(sooner.fired[0]! >= refreshedAt + 40, `moved sooner: fired at ${sooner.fired[0]!.toFixed(1)} ms`);
  assert.ok(sooner.fired[0]! < 60_000, "moved sooner");
  assert.deepEqual(cancelled.fired, [], "a disarmed deadline never fires");
  await eventually("the clock's timer gone", () => !d.ticking);
});

test("an expiry that arms again (a paused body's timeout) keeps the clock running until it is done", async () => {
  const d = new Deadlines(10);
  const t0 = performance.now();
  let rounds = 0;
  const it: Expiring & { at: number[] } = {
    deadline: 0,
    at: [],
    expire() {
      it.at.push(performance.now() - t0);
      if (++rounds < 3) d.arm(it, 25);
    },
  };
  d.arm(it, 25);
  await eventually("three expiries", () => it.at.length === 3);
  it.at.forEach((t, i) => assert.ok(t >= 25 * (i + 1), `expiry ${i + 1} at ${t.toFixed(1)} ms`));
  await eventually("the clock's timer gone", () => !d.ticking);
});
