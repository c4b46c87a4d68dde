/** Work-queue semantics the reconcile contract relies on. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkQueue } from "../src/provider/queue.js";

test("adds of a waiting key merge; FIFO otherwise", async () => {
  const q = new WorkQueue();
  q.add("a");
  q.add("b");
  q.add("a");
  assert.equal(q.length, 2);
  assert.equal(await q.get(), "a");
  assert.equal(await q.get(), "b");
});

test("a key being processed is not handed out again until done, then once", async () => {
  const q = new WorkQueue();
  q.add("a");
  const k = await q.get();
  q.add("a");
  q.add("a");
  assert.equal(q.length, 0, "not handed to a second worker");
  q.done(k!);
  assert.equal(q.length, 1, "re-queued once after done");
  assert.equal(await q.get(), "a");
});

test("a waiting worker gets the next key", async () => {
  const q = new WorkQueue();
  const pending = q.get();
  q.add("x");
  assert.equal(await pending, "x");
});

test("failures back off exponentially per key and reset on forget", () => {
  const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 1000, burst: 1000 });
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => q.addRateLimited("k")),
    [5, 10, 20, 40, 80],
  );
  for (let i = 0; i < 10; i++) q.addRateLimited("k");
  assert.equal(q.addRateLimited("k"), 1000, "capped");
  q.forget("k");
  assert.equal(q.addRateLimited("k"), 5);
  assert.equal(q.addRateLimited("other"), 5, "per key");
  q.shutDown();
});

test("the overall bucket limits bursts of failures", () => {
  const q = new WorkQueue({ baseDelayMs: 1, qps: 10, burst: 3 });
  const delays = ["a", "b", "c", "d", "e"].map((k) => q.addRateLimited(k));
  assert.deepEqual(delays.slice(0, 3), [1, 1, 1]);
  assert.ok(delays[3]! >= 90 && delays[3]! <= 110, `4th waits ~100 ms, got ${delays[3]}`);
  assert.ok(delays[4]! >= 190 && delays[4]! <= 210, `5th waits ~200 ms, got ${delays[4]}`);
  q.shutDown();
});

test("shutDown releases waiting workers", async () => {
  const q = new WorkQueue();
  const pending = q.get();
  q.shutDown();
  assert.equal(await pending, undefined);
});

test("addAfter keeps the earliest deadline: a short requeue is not swallowed by a long one", async () => {
  const q = new WorkQueue();
  q.addAfter("gateway/ns/a", 60_000); // e.g. the Secret re-check
  q.addAfter("gateway/ns/a", 20); // pods not serving yet: look again soon
  q.addAfter("gateway/ns/a", 30_000); // a later request does not push it back
  const got = await Promise.race([q.get(), new Promise((r) => setTimeout(() => r("timeout"), 2000))]);
  assert.equal(got, "gateway/ns/a");
  q.shutDown();
});

test("pending: a key added again while it is processed, so its current run may stop early", async () => {
  const q = new WorkQueue();
  q.add("a");
  const k = (await q.get())!;
  assert.equal(q.pending(k), false);
  q.add("a");
  assert.equal(q.pending(k), true);
  q.done(k);
  assert.equal(q.pending(k), false); // waiting again, not being processed
  assert.equal(await q.get(), "a");
});
