/**
 * The gateway event coalescer (runner/coalesce.ts) on its own, with real timers. Only orderings
 * are asserted, never durations: a window set to an hour cannot end within a test, one of a few
 * milliseconds ends whenever the machine gets to it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Coalescer } from "../src/runner/coalesce.js";

const HOUR = 3_600_000;

/** Records fired keys; next(n) resolves once n have fired (holding the loop open: the timers are unref'd). */
function recorder() {
  const fired: string[] = [];
  let wake: (() => void) | undefined;
  return {
    fired,
    fire: (key: string) => {
      fired.push(key);
      wake?.();
    },
    next: (count: number) =>
      new Promise<void>((resolve) => {
        const hold = setInterval(() => {}, 1000);
        const check = () => {
          if (fired.length < count) return void (wake = check);
          clearInterval(hold);
          resolve();
        };
        check();
      }),
  };
}

test("many events within the quiet period fire once, per key", async () => {
  const r = recorder();
  const c = new Coalescer({ quietMs: 5, maxDelayMs: HOUR }, r.fire);
  for (let i = 0; i < 100; i++) c.poke("gateway/a/g");
  c.poke("gateway/a/h");
  await r.next(2);
  await sleep(20);
  assert.deepEqual([...r.fired].sort(), ["gateway/a/g", "gateway/a/h"]);
  c.stop();
});

test("events that never pause still fire: the max delay ends the window", async () => {
  const r = recorder();
  const c = new Coalescer({ quietMs: HOUR, maxDelayMs: 5 }, r.fire);
  c.poke("k");
  const poking = setInterval(() => c.poke("k"), 1);
  await r.next(1);
  clearInterval(poking);
  c.stop();
  assert.deepEqual(r.fired, ["k"]);
});

test("events during the key's reconcile are held until it ends, then gathered into one", async () => {
  const r = recorder();
  const c = new Coalescer({ quietMs: 1, maxDelayMs: HOUR }, r.fire);
  c.poke("k");
  // The reconcile starts before the window ends: it covers that event, which no longer fires.
  c.started("k");
  for (let i = 0; i < 10; i++) c.poke("k");
  assert.equal(c.waiting("k"), true, "a newer change waits");
  await sleep(30);
  assert.deepEqual(r.fired, [], "nothing fires while the reconcile runs");
  c.finished("k");
  await r.next(1);
  await sleep(20);
  assert.deepEqual(r.fired, ["k"]);
  assert.equal(c.waiting("k"), false);
  c.stop();
});

test("a reconcile with no event during it opens no window", async () => {
  const r = recorder();
  const c = new Coalescer({ quietMs: 1, maxDelayMs: HOUR }, r.fire);
  c.started("k");
  c.finished("k");
  await sleep(30);
  assert.deepEqual(r.fired, []);
  c.stop();
});
