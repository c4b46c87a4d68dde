/**
 * The access log's hand-written serializer and its batching: every line must parse back to the
 * record it was made from whatever a client put in it, keep the field order, and no line may be
 * lost when the data plane stops.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AccessLog, type AccessRecord } from "../src/observability/access-log.js";
import { jsonMillis, jsonString } from "../src/observability/json-line.js";
import { baseConfig, http, prng, proxyPipeline, startDataplane, startUpstream, stopAll, writeTree } from "./helpers.js";

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

  it("lines of many event-loop turns leave together, in one write, when the batch's time is up", async () => {
    const { stream, writes } = sink();
    const log = new AccessLog(stream, 0, 60_000); // a wait no test reaches: only close() writes
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 0; i < 10; i++) log.write(record(`r${turn}.${i}`));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(writes.length, 0, "no write per event-loop turn");
    await log.close();
    assert.equal(writes.length, 1);
    assert.equal(writes[0]!.split("\n").length - 1, 50);
  });

  it("a batch leaves on its timer without a close, and the next batch after it", async () => {
    const written: string[] = [];
    let wrote: () => void = () => {};
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        written.push(chunk.toString("utf8"));
        wrote();
        cb();
      },
    });
    const log = new AccessLog(stream, 0, 5);
    for (const batch of ["a", "b"]) {
      const next = new Promise<void>((r) => (wrote = r));
      for (let i = 0; i < 3; i++) log.write(record(`${batch}${i}`));
      await next;
    }
    assert.deepEqual(
      written.map((w) =>
        w
          .trimEnd()
          .split("\n")
          .map((l) => (JSON.parse(l) as { request_id: string }).request_id),
      ),
      [
        ["a0", "a1", "a2"],
        ["b0", "b1", "b2"],
      ],
    );
    await log.close();
  });

  it("a written batch, small or large, is never overwritten by the next (a stream may hold it)", async () => {
    const kept: Buffer[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        kept.push(chunk); // as a file stream's queue holds it: read only at the end
        cb();
      },
    });
    const log = new AccessLog(stream, 0, 60_000);
    const ids: string[] = [];
    for (let batch = 0; batch < 6; batch++) {
      // Small batches (flushed by hand, as a reload or the timer does) and batches of more than 64 KiB.
      const n = batch % 2 === 0 ? 3 : 400;
      for (let i = 0; i < n; i++) {
        ids.push(`b${batch}-${i}`);
        log.write(record(`b${batch}-${i}`));
      }
      log.flush();
    }
    await log.close();
    const got = Buffer.concat(kept)
      .toString("utf8")
      .trimEnd()
      .split("\n")
      .map((l) => (JSON.parse(l) as { request_id: string }).request_id);
    assert.deepEqual(got, ids);
  });

  it("a full batch (64 KiB) leaves at once in whole lines, a line longer than a batch alone, all in order", async () => {
    const { stream, writes } = sink();
    const log = new AccessLog(stream, 0, 60_000);
    const ids: string[] = [];
    for (let i = 0; i < 600; i++) {
      const id = i === 300 ? "L".repeat(70_000) : i % 7 === 0 ? `é中🙂${i}`.repeat(40) : `r${i}`;
      ids.push(id);
      log.write(record(id));
    }
    assert.ok(writes.length >= 2, `full batches were written without waiting (${writes.length} writes)`);
    for (const w of writes) {
      assert.ok(w.endsWith("\n"), "a write ends at a line end");
      assert.ok(Buffer.byteLength(w) <= 64 * 1024 || w.split("\n").length === 2, "at most a batch, or one line");
    }
    await log.close();
    const got = writes
      .join("")
      .trimEnd()
      .split("\n")
      .map((l) => (JSON.parse(l) as { request_id: string }).request_id);
    assert.deepEqual(got, ids);
  });

  it("a group worker's batches leave in whole lines of at most 4 KiB", async () => {
    const { stream, writes } = sink();
    const log = new AccessLog(stream, 4096, 60_000);
    for (let i = 0; i < 400; i++) log.write(record(`w${i}`));
    await log.close();
    assert.ok(writes.length > 1);
    for (const w of writes) assert.ok(Buffer.byteLength(w) <= 4096 && w.endsWith("\n"));
    assert.equal(writes.join("").split("\n").length - 1, 400);
  });
});

/** Strings built from the pieces a serializer can get wrong, in random order and length. */
function corpusString(rnd: () => number): string {
  const pieces = [
    () => String.fromCharCode(Math.floor(rnd() * 0x20)), // a control character
    () => '"',
    () => "\\",
    () => "\u007f",
    () => "/api/v1/Patient",
    () => "é中🙂",
    () => String.fromCharCode(0xd800 + Math.floor(rnd() * 0x800)), // a lone surrogate
    () => "\ud83d\ude42",
    () => "\u2028",
    () => String.fromCharCode(0x20 + Math.floor(rnd() * 0x5f)),
    () => "x".repeat(Math.floor(rnd() * 3000)), // very long values
  ];
  let s = "";
  const n = Math.floor(rnd() * 12);
  for (let i = 0; i < n; i++) s += pieces[Math.floor(rnd() * pieces.length)]!();
  return s;
}

/**
 * What the line for `r` must be, byte for byte: JSON.stringify of the fields in their fixed order
 * (the serializer is hand-written for speed; this is the definition it must keep).
 */
function expectedLine(r: AccessRecord, timestamp: string): string {
  return JSON.stringify({
    level: "info",
    message: "access",
    component: "dataplane",
    timestamp,
    request_id: r.request_id,
    method: r.method,
    path: r.path,
    status: r.status,
    duration_ms: r.duration_ms,
    ...(r.upstream_ms === undefined ? {} : { upstream_ms: r.upstream_ms }),
    pipeline: r.pipeline,
    endpoint: r.endpoint,
    backend: r.backend,
    ...(r.client === undefined ? {} : { client: r.client }),
    ...(r.operation === undefined ? {} : { operation: r.operation }),
  });
}

describe("access log lines, byte for byte", () => {
  it("jsonMillis is JSON.stringify for milliseconds rounded to the microsecond, and for anything else", () => {
    const rnd = prng(7);
    const cases: number[] = [];
    for (let k = 0; k <= 1_000_000; k++) cases.push(k / 1000);
    for (let i = 0; i < 200_000; i++) cases.push(Math.floor(rnd() * 10 ** (3 + rnd() * 13)) / 1000);
    cases.push(
      1e15 / 1000,
      1e15 / 1000 + 1,
      2 ** 53 / 1000,
      -1 / 1000,
      -0,
      0.1 + 0.2,
      1 / 3,
      1e-7,
      1e21,
      NaN,
      Infinity,
    );
    for (const n of cases) if (jsonMillis(n) !== JSON.stringify(n)) assert.fail(`${n}: ${jsonMillis(n)}`);
  });

  it("a generated corpus of 4,000 hostile records: each line is JSON.stringify of its fields in order", async () => {
    const rnd = prng(18);
    const num = () => {
      const k = rnd();
      // Values no executor makes, which must still come out as JSON.stringify writes them.
      if (k < 0.08) {
        const odd = [NaN, Infinity, -Infinity, -0, 0, 1e21, 5e-7, 0.1 + 0.2, 1.23456, -2.5, 2 ** 53, 1e15 / 1e3 + 0.5];
        return odd[Math.floor(rnd() * odd.length)]!;
      }
      // What the executor logs: milliseconds rounded to the microsecond.
      return Math.round(rnd() * 10 ** Math.floor(rnd() * 9) * 1e3) / 1e3;
    };
    const records: AccessRecord[] = [];
    for (let i = 0; i < 4000; i++) {
      // Most lines repeat the previous line's route names (as a busy route's do), some change one.
      const prev = records[i - 1];
      const same = prev && rnd() < 0.6;
      const pick = (k: "pipeline" | "endpoint" | "backend") =>
        same && rnd() < 0.9 ? prev[k] : rnd() < 0.3 && prev ? prev[k] + "" : corpusString(rnd);
      records.push({
        request_id: corpusString(rnd),
        method: corpusString(rnd),
        path: corpusString(rnd),
        status: rnd() < 0.9 ? 100 + Math.floor(rnd() * 500) : num(),
        duration_ms: num(),
        upstream_ms: rnd() < 0.3 ? undefined : num(),
        pipeline: pick("pipeline"),
        endpoint: pick("endpoint"),
        backend: pick("backend"),
        client: rnd() < 0.2 ? undefined : corpusString(rnd),
        ...(rnd() < 0.2 ? { operation: corpusString(rnd) } : {}),
      });
    }
    const { stream, writes } = sink();
    const log = new AccessLog(stream);
    // Written in uneven batches, so lines that cross a flush are covered too.
    for (let i = 0; i < records.length; i++) {
      log.write(records[i]!);
      if (rnd() < 0.05) await new Promise((r) => setImmediate(r));
    }
    await log.close();
    const lines = writes.join("").split("\n");
    assert.equal(lines.pop(), "");
    assert.equal(lines.length, records.length);
    lines.forEach((line, i) => {
      const timestamp = /"timestamp":"([^"]*)"/.exec(line)?.[1] ?? "";
      assert.match(timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(line, expectedLine(records[i]!, timestamp), `record ${i}`);
    });
  });
});

describe("access log lines encoded in place", () => {
  it("lines of everyday values (printable ASCII, numbers of every size) are JSON.stringify's bytes, at a batch's end too", async () => {
    const rnd = prng(1818);
    const ascii = (max: number) => {
      let s = "";
      const n = Math.floor(rnd() * max);
      for (let i = 0; i < n; i++) s += String.fromCharCode(0x20 + Math.floor(rnd() * 0x60)); // 0x20-0x7f
      return s;
    };
    const ms = () => Math.round(rnd() * 10 ** Math.floor(rnd() * 16) * 1e3) / 1e3;
    const records: AccessRecord[] = [];
    for (let i = 0; i < 20_000; i++) {
      const route = Math.floor(rnd() * 3);
      records.push({
        request_id: ascii(40),
        method: ["GET", "POST", ascii(8)][route]!,
        path: "/" + ascii(rnd() < 0.01 ? 20_000 : 200),
        status:
          rnd() < 0.95 ? Math.floor(rnd() * 1000) : [0, 9, 10, 99, 100, 2 ** 31, 2 ** 53 - 1, 2 ** 53, 1.5][i % 9]!,
        duration_ms: ms(),
        upstream_ms: rnd() < 0.3 ? undefined : ms(),
        pipeline: "p" + route,
        endpoint: "e" + route,
        backend: "b" + route,
        client: rnd() < 0.2 ? undefined : "127.0.0." + (i % 256),
        ...(rnd() < 0.05 ? { operation: "C-FIND" } : {}),
      });
    }
    const { stream, writes } = sink();
    const log = new AccessLog(stream);
    for (const r of records) log.write(r);
    await log.close();
    assert.ok(writes.length > 20, `${writes.length} batches: lines cross many batch ends`);
    const lines = writes.join("").split("\n");
    assert.equal(lines.pop(), "");
    assert.equal(lines.length, records.length);
    lines.forEach((line, i) => {
      const timestamp = /"timestamp":"([^"]*)"/.exec(line)?.[1] ?? "";
      if (line !== expectedLine(records[i]!, timestamp))
        assert.equal(line, expectedLine(records[i]!, timestamp), `record ${i}`);
    });
  });
});

describe("access lines from a real data plane, hostile header values", () => {
  const stops: (() => unknown)[] = [];
  after(() => stopAll(stops));

  /** One request over a raw socket (header bytes as given), the response's status line and x-request-id. */
  function raw(port: number, head: Buffer): Promise<{ status: number; id: string | undefined }> {
    return new Promise((resolve, reject) => {
      const s = connect(port, "127.0.0.1");
      const chunks: Buffer[] = [];
      s.on("data", (c: Buffer) => chunks.push(c));
      s.on("error", reject);
      s.on("close", () => {
        const text = Buffer.concat(chunks).toString("latin1");
        resolve({
          status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
          id: /\r\nx-request-id: ([^\r]*)\r\n/i.exec(text)?.[1],
        });
      });
      // No FIN after the request: a client that half-closes is a client gone (Node aborts the request).
      s.write(head);
    });
  }

  it("every request served leaves one line that is canonical JSON, with the id the client got", async () => {
    const up = await startUpstream((_req, res) => res.end("ok"));
    stops.push(() => up.close());
    const dir = writeTree({});
    const logFile = join(dir, "dataplane.log");
    const config = baseConfig(proxyPipeline("api", "/api", up.url)).replace(
      'log_level = "info"',
      `log_level = "info"\nlog_to_file = true\nlog_file_path = "${logFile}"`,
    );
    writeTree({ "config.toml": config }, dir);
    const dp = await startDataplane(join(dir, "config.toml"));
    stops.push(() => dp.stop("SIGKILL"));
    const port = dp.ports.default!;

    const latin1 = (s: string) => Buffer.from(s, "latin1");
    const ids = [
      "sane-id-1", // echoed
      'quote"inside', // not a sane id: a fresh one
      "back\\slash",
      "tab\there",
      "\xe9\xff obs-text", // bytes >= 0x80, read as Latin-1
      "</script><script>",
      "a".repeat(5000), // very long
      "x".repeat(128), // the longest sane id
      "\x01control", // refused by Node's parser: 400, no line
      "\x7fdel",
    ];
    const results = [];
    for (const [i, id] of ids.entries()) {
      const head = latin1(
        `GET /api/item/${i}/%22q%22/%C3%A9?token=secret HTTP/1.1\r\nhost: a\r\nx-request-id: ${id}\r\n` +
          `user-agent: ${"\u00e9".repeat(1000)}\r\nx-long: ${"v".repeat(3000)}\r\nconnection: close\r\n\r\n`,
      );
      results.push({ i, sent: id, ...(await raw(port, head)) });
    }
    // Node's parser refuses a control character in a header value (400, before any routing).
    assert.deepEqual(
      results.map((r) => r.status),
      ids.map((_, i) => (i === 8 || i === 9 ? 400 : 200)),
    );
    const served = results.filter((r) => r.status === 200);
    // The log file gets the same batches stdout does; wait for the last one.
    const lines = () =>
      readFileSync(logFile, "utf8")
        .split("\n")
        .filter((l) => l.includes('"message":"access"'));
    for (let t = 0; t < 100 && lines().length < served.length; t++) await new Promise((r) => setTimeout(r, 50));
    const access = lines();
    assert.equal(access.length, served.length, "one line per request served, none for refused ones");
    for (const r of served) {
      const line = access.find((l) => l.includes(`"path":"/api/item/${r.i}/`));
      assert.ok(line, `a line for request ${r.i}`);
      const got = JSON.parse(line) as Record<string, unknown>;
      // Canonical JSON: re-serializing the parsed line gives the same bytes (escapes, key order).
      assert.equal(JSON.stringify(got), line);
      assert.equal(got.request_id, r.id, "the id the client got back");
      assert.equal(got.path, `/api/item/${r.i}/%22q%22/%C3%A9`, "the canonical path, never the query");
      assert.ok(!line.includes("secret"));
      assert.equal(got.method, "GET");
      assert.equal(got.status, 200);
      assert.equal(got.client, "127.0.0.1");
    }
    assert.equal(served.find((r) => r.i === 0)?.id, "sane-id-1");
    assert.equal(served.find((r) => r.i === 7)?.id, "x".repeat(128));
    for (const r of served.filter((x) => x.i !== 0 && x.i !== 7))
      assert.match(r.id ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, `request ${r.i}`);
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
