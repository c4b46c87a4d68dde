/**
 * Request ids and trace context as pipeline/trace.ts makes them without crypto.randomUUID or a
 * string per hex piece (issue 18): the same formats, every id fresh, random where it must be.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { nextTraceparent, requestId, uuid4 } from "../src/pipeline/trace.js";

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test("fresh request ids are version-4 UUIDs, all different, each digit uniform", () => {
  const n = 40_000; // past the random pool's 512 ids, several refills
  const seen = new Set<string>();
  // Counts of each hex digit at each random position (not the version digit or the variant's).
  const counts = Array.from({ length: 36 }, () => new Array<number>(16).fill(0));
  for (let i = 0; i < n; i++) {
    const id = requestId(undefined);
    assert.match(id, UUID4);
    seen.add(id);
    for (let k = 0; k < 36; k++) if (id[k] !== "-") counts[k]![parseInt(id[k]!, 16)]!++;
  }
  assert.equal(seen.size, n);
  for (let k = 0; k < 36; k++) {
    if ([8, 13, 14, 18, 19, 23].includes(k)) continue;
    // n/16 = 2,500 each; a fixed or stuck digit would put all n on one value.
    const max = Math.max(...counts[k]!);
    const min = Math.min(...counts[k]!);
    assert.ok(min > 2000 && max < 3000, `digit ${k}: ${min}..${max}`);
  }
  // The variant digit takes 8, 9, a, b alike.
  const variant = counts[19]!;
  assert.deepEqual(
    variant.map((c, d) => (c > 0 ? d : -1)).filter((d) => d >= 0),
    [8, 9, 10, 11],
  );
  assert.ok(Math.min(...variant.slice(8, 12)) > 9000);
});

test("a sane incoming X-Request-Id is kept; anything else gets a fresh UUID", () => {
  assert.equal(requestId("rid-1"), "rid-1");
  assert.equal(requestId("a.b:c@d/e+f=g_h-i"), "a.b:c@d/e+f=g_h-i");
  for (const bad of ["", "has space", "x".repeat(129), "semi;colon", ["a", "b"]]) assert.match(requestId(bad), UUID4);
  assert.notEqual(uuid4(), uuid4());
});

test("traceparent: a new trace when there is none, the caller's trace with a new span otherwise", () => {
  const spans = new Set<string>();
  const traces = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const t = nextTraceparent(undefined);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(t);
    assert.ok(m, t);
    traces.add(m[1]!);
    spans.add(m[2]!);
  }
  assert.equal(traces.size, 2000);
  assert.equal(spans.size, 2000);
  const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const next = nextTraceparent(incoming);
  assert.match(next, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  assert.notEqual(next.slice(36, 52), "00f067aa0ba902b7");
  // Invalid ones start a new trace (version ff, an all-zero trace or span id).
  for (const bad of [
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "garbage",
  ])
    assert.doesNotMatch(nextTraceparent(bad), /4bf92f3577b34da6a3ce929d0e0e4736/);
});

test("new traceparents over many batches: all different, trace and span digits uniform, none all-zero", () => {
  const n = 40_000; // ids come in batches from the random pool: many batches and pool refills
  const seen = new Set<string>();
  const counts = Array.from({ length: 55 }, () => new Array<number>(16).fill(0));
  for (let i = 0; i < n; i++) {
    const t = nextTraceparent(undefined);
    assert.match(t, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.doesNotMatch(t, /^00-0{32}-|-0{16}-01$/);
    seen.add(t);
    for (let k = 3; k < 52; k++) if (t[k] !== "-") counts[k]![parseInt(t[k]!, 16)]!++;
  }
  assert.equal(seen.size, n);
  // A trace id and a span id from one batch slot never reappear in another request's.
  const traceIds = new Set([...seen].map((t) => t.slice(3, 35)));
  const spanIds = new Set([...seen].map((t) => t.slice(36, 52)));
  assert.equal(traceIds.size, n);
  assert.equal(spanIds.size, n);
  for (let k = 3; k < 52; k++) {
    if (k === 35) continue;
    const max = Math.max(...counts[k]!);
    const min = Math.min(...counts[k]!);
    assert.ok(min > 2000 && max < 3000, `digit ${k}: ${min}..${max}`);
  }
});

test("ids stay what they were when later ids are made (a batch's text is never rewritten under them)", () => {
  const ids = Array.from({ length: 300 }, () => uuid4());
  const copies = ids.map((s) => Buffer.from(s, "latin1").toString("latin1"));
  const traces = Array.from({ length: 300 }, () => nextTraceparent(undefined));
  const traceCopies = traces.map((s) => Buffer.from(s, "latin1").toString("latin1"));
  for (let i = 0; i < 1000; i++) {
    uuid4();
    nextTraceparent(undefined);
  }
  assert.deepEqual(ids, copies);
  assert.deepEqual(traces, traceCopies);
  assert.equal(new Set(ids).size, 300);
});
