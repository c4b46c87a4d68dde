/**
 * The access log's hand-written serializer and its batching: every line must parse back to the
 * record it was made from whatever a client put in it, keep the field order, and no line may be
 * lost when the data plane stops.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { join } from "node:path";
import { AccessLog, type AccessRecord } from "../src/observability/access-log.js";
import { jsonString } from "../src/observability/json-line.js";
import { baseConfig, http, proxyPipeline, startDataplane, startUpstream, stopAll, writeTree } from "./helpers.js";

/** A real Writable that keeps each write it gets, so batching is visible. */
function sink(): { stream: Writable; writes: string[] } {
  const writes: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk.toString("utf8"));
      cb();
    },
  });
  return { stream, writes };
}

const controls = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).join("");

// Strings a client can get into a field, and what a naive serializer gets wrong.
const HOSTILE: string[] = [
  "",
  "plain/ascii-path",
  '"',
  '\\"',
  'a"b\\c',
  "\\",
  "\\\\u0041",
  controls,
  "tab\there\nnewline\r\nCRLF\b\f",
  "\u007f del",
  "\u2028\u2029 line separators",
  "é ü 中文 🙂",
  "\ud83d\ude42", // a well-formed pair
  "\ud83d", // lone high surrogate
  "\ude42", // lone low surrogate
  "x\ud83dy",
  "\ude42\ud83d", // reversed pair: two lone halves
  "\ud83d\ud83d\ude42", // lone high, then a pair
  '{"injected":"field"}',
  '","status":200,"x":"',
  "</script><script>",
  "\u0000nul",
  "a".repeat(5000) + '"',
];

function record(s: string, extra: Partial<AccessRecord> = {}): AccessRecord {
  return {
    request_id: s,
    method: s,
    path: s,
    status: 200,
    duration_ms: 1.234,
    upstream_ms: 0.5,
    pipeline: s,
    endpoint: s,
    backend: s,
    client: s,
    ...extra,
  };
}

describe("access log serializer", () => {
  it("jsonString is JSON.stringify for every hostile string", () => {
    for (const s of HOSTILE) assert.equal(jsonString(s), JSON.stringify(s), `for ${JSON.stringify(s)}`);
  });

  it("every line parses back to its record, fields in the fixed order", async () => {
    const { stream, writes } = sink();
    const log = new AccessLog(stream);
    for (const s of HOSTILE) log.write(record(s));
    await log.close();
    const lines = writes.join("").split("\n");
    assert.equal(lines.pop(), "", "the output ends with a newline");
    assert.equal(lines.length, HOSTILE.length);
    lines.forEach((line, i) => {
      const s = HOSTILE[i]!;
      // A line is one physical line: no raw newline or U+2028 splits it for a line-based reader
      // that would be fine, but a raw \n would not.
      assert.ok(!line.includes("\n"));
      // Valid UTF-8 once written: a lone surrogate must not reach the stream unescaped.
      assert.equal(Buffer.from(line, "utf8").toString("utf8"), line);
      const got = JSON.parse(line) as Record<string, unknown>;
      assert.equal(typeof got.timestamp, "string");
      assert.deepEqual(
        { ...got, timestamp: "T" },
        {
          level: "info",
          message: "access",
          component: "dataplane",
          timestamp: "T",
          request_id: s,
          method: s,
          path: s,
          status: 200,
          duration_ms: 1.234,
          upstream_ms: 0.5,
          pipeline: s,
          endpoint: s,
          backend: s,
          client: s,
        },
      );
      assert.deepEqual(Object.keys(got), [
        "level",
        "message",
        "component",
        "timestamp",
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
        "upstream_ms",
        "pipeline",
        "endpoint",
        "backend",
        "client",
      ]);
    });
  });

  it("optional fields: absent ones are left out, a DIMSE operation is kept", async () => {
    const { stream, writes } = sink();
    const log = new AccessLog(stream);
    log.write(record("p", { upstream_ms: undefined, client: undefined, operation: "C-FIND" }));
    log.write(record("p", { duration_ms: NaN }));
    await log.close();
    const [a, b] = writes
      .join("")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(a!.operation, "C-FIND");
    assert.ok(!("upstream_ms" in a!) && !("client" in a!));
    assert.equal(b!.duration_ms, null, "a non-finite number is null, as JSON.stringify makes it");
  });

  it("the lines of one event-loop turn leave in one write", async () => {
    const { stream, writes } = sink();
    const log = new AccessLog(stream);
    for (let i = 0; i < 50; i++) log.write(record(`r${i}`));
    assert.equal(writes.length, 0, "nothing is written synchronously");
    await new Promise((r) => setImmediate(r));
    assert.equal(writes.length, 1);
    assert.equal(writes[0]!.split("\n").length - 1, 50);
    await log.close();
  });
});

describe("access log at shutdown", () => {
  const stops: (() => unknown)[] = [];
  after(() => stopAll(stops));

  it("SIGTERM while N requests are in flight: N responses, N access lines", async () => {
    const N = 40;
    // The upstream holds every request until all N have arrived, so SIGTERM lands while all are
    // in flight; the drain then lets them finish and each must leave its line.
    const held: (() => void)[] = [];
    let arrived!: () => void;
    const allArrived = new Promise<void>((r) => (arrived = r));
    const up = await startUpstream((_req, res) => {
      held.push(() => res.end("ok"));
      if (held.length === N) arrived();
    });
    stops.push(() => up.close());
    const dir = writeTree({ "config.toml": baseConfig(proxyPipeline("api", "/api", up.url)) });
    const dp = await startDataplane(join(dir, "config.toml"));
    stops.push(() => dp.stop("SIGKILL"));

    const responses = Array.from({ length: N }, (_, i) =>
      http(dp.url("default", `/api/item/${i}`), { headers: { "x-request-id": `drain-${i}` } }),
    );
    await allArrived;
    const stopped = dp.stop("SIGTERM");
    await dp.waitForLog((l) => l.message === "draining");
    for (const release of held) release();
    const results = await Promise.all(responses);
    assert.deepEqual(
      results.map((r) => r.status),
      Array<number>(N).fill(200),
    );
    assert.equal(await stopped, 0);
    const ids = dp.logs
      .filter((l) => l.message === "access")
      .map((l) => l.request_id as string)
      .sort();
    assert.deepEqual(ids, Array.from({ length: N }, (_, i) => `drain-${i}`).sort());
  });
});
