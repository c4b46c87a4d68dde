/**
 * proxy.workers = 2 over the wire: both workers take requests on the same port, metrics add up
 * over them, a reload reaches both and a bad one is refused by both, a killed worker is replaced,
 * SIGTERM stops the whole group.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { lineChunks } from "../src/observability/access-log.js";
import {
  baseConfig,
  eventually,
  freePort,
  http,
  runCli,
  startDataplane,
  writeTree,
  type Dataplane,
} from "./helpers.js";

interface WorkerInfo {
  worker: number;
  pid?: number;
  ready: boolean;
  config_hash?: string;
  requests?: number;
  restarts: number;
  last_reload?: { ok: boolean; trigger: string };
}

function config(opts: { workers?: string; extraRoute?: boolean; broken?: boolean } = {}): string {
  const cfg = baseConfig(
    `
[pipelines.echo]
networks = ["default"]
endpoints = ["echo_in"]
backends = ["echo_out"]
[endpoints.echo_in]
service = "echo"
[endpoints.echo_in.options]
path_prefix = "/echo"
[backends.echo_out]
service = "echo"
${
  opts.extraRoute || opts.broken
    ? `
[pipelines.extra]
networks = ["default"]
endpoints = [${opts.broken ? '"no_such_endpoint"' : '"extra_in"'}]
backends = ["echo_out"]
[endpoints.extra_in]
service = "echo"
[endpoints.extra_in.options]
path_prefix = "/extra"
`
    : ""
}`,
    { id: "workers" },
  );
  return cfg.replace("[proxy]\n", `[proxy]\nworkers = ${opts.workers ?? "2"}\n`);
}

async function workers(dp: Dataplane): Promise<WorkerInfo[]> {
  const r = await http(dp.url("management", "/admin/info"));
  assert.equal(r.status, 200, r.text);
  return (r.json() as { workers: WorkerInfo[] }).workers;
}

function metric(text: string, line: RegExp): number {
  const m = line.exec(text);
  return m ? Number(m[1]) : NaN;
}

/** Requests on fresh connections (the kernel picks a worker per connection) until both workers have served. */
async function spread(dp: Dataplane, path: string): Promise<number> {
  let sent = 0;
  await eventually(
    "both workers to serve requests",
    async () => {
      for (let i = 0; i < 10; i++) {
        const r = await http(dp.url("default", path), { agent: false });
        assert.equal(r.status, 200, r.text);
        sent++;
      }
      const ws = await workers(dp);
      return ws.every((w) => (w.requests ?? 0) > 0);
    },
    { timeoutMs: 60_000, intervalMs: 0 },
  );
  return sent;
}

test("proxy.workers = 2: both serve one port, metrics aggregate, reloads reach both, a bad one neither", async () => {
  const dir = writeTree({ "config.toml": config() });
  const file = join(dir, "config.toml");
  const dp = await startDataplane(file);
  try {
    const started = dp.logs.find((l) => l.message === "harmony data plane started")!;
    assert.equal(started.workers, 2);
    const ws = await workers(dp);
    assert.equal(ws.length, 2);
    assert.equal(new Set(ws.map((w) => w.pid)).size, 2, "two worker processes");
    assert.ok(!ws.some((w) => w.pid === dp.pid), "the primary serves no requests");

    // Both take connections on the one port; /metrics is the sum over both.
    const sent = await spread(dp, "/echo/a");
    const metrics = (await http(dp.url("management", "/metrics"))).text;
    const total = metric(metrics, /^harmony_http_requests_total\{pipeline="echo"[^}]*status="200"\} (\d+)$/m);
    assert.equal(total, sent, "the aggregated counter counts every worker's requests");
    assert.equal(metric(metrics, /^harmony_workers (\d+)$/m), 2);
    const ready = await http(dp.url("management", "/readyz"));
    assert.equal(ready.status, 200, ready.text);
    const hash0 = (ready.json() as { config_hash: string }).config_hash;
    assert.ok(ws.every((w) => w.config_hash === hash0));

    // A reload (the file changed: the primary's watcher) reaches both workers.
    writeFileSync(file, config({ extraRoute: true }));
    const hash1 = await eventually("both workers on the new config", async () => {
      const now = await workers(dp);
      const hashes = new Set(now.map((w) => w.config_hash));
      return hashes.size === 1 && !hashes.has(hash0) ? [...hashes][0] : undefined;
    });
    const after = await http(dp.url("management", "/readyz"));
    assert.equal((after.json() as { config_hash: string }).config_hash, hash1);
    for (let i = 0; i < 6; i++) assert.equal((await http(dp.url("default", "/extra/x"), { agent: false })).status, 200);

    // A broken config is refused by each worker, and each keeps serving the last good one.
    writeFileSync(file, config({ broken: true }));
    const refused = await http(dp.url("management", "/admin/reload"), { method: "POST" });
    assert.equal(refused.status, 422, refused.text);
    const body = refused.json() as { ok: boolean; problems: string[]; workers: { ok: boolean }[] };
    assert.equal(body.ok, false);
    assert.equal(body.workers.length, 2);
    assert.ok(
      body.workers.every((w) => !w.ok),
      "every worker refused it",
    );
    assert.ok(
      body.problems.some((p) => p.includes("no_such_endpoint")),
      body.problems.join("\n"),
    );
    const kept = await workers(dp);
    assert.ok(
      kept.every((w) => w.config_hash === hash1 && w.last_reload?.ok === false),
      JSON.stringify(kept),
    );
    for (let i = 0; i < 6; i++) assert.equal((await http(dp.url("default", "/extra/x"), { agent: false })).status, 200);
    const m2 = (await http(dp.url("management", "/metrics"))).text;
    assert.equal(metric(m2, /^harmony_config_last_reload_successful (\d+)$/m), 0);
    // Two processes on one stdout: every line is whole JSON, and both workers' access lines are there.
    assert.deepEqual(
      dp.logs.filter((l) => l.level === "raw"),
      [],
    );
    assert.ok(dp.logs.filter((l) => l.message === "access").length >= sent);
  } finally {
    await dp.stop();
  }
});

test("proxy.workers = 2: a killed worker is replaced and logged; SIGTERM stops the whole group", async () => {
  const dir = writeTree({ "config.toml": config() });
  const dp = await startDataplane(join(dir, "config.toml"));
  let pids: number[] = [];
  try {
    const before = await workers(dp);
    const victim = before[1]!.pid!;
    process.kill(victim, "SIGKILL");
    const logged = await dp.waitForLog((l) => l.message === "worker exited; starting another", 30_000);
    assert.equal(logged.worker, 2);
    assert.equal(logged.pid, victim);
    assert.equal(logged.exit, "signal SIGKILL");
    const now = await eventually(
      "a new worker 2, ready",
      async () => {
        const r = await http(dp.url("management", "/readyz"));
        if (r.status !== 200) return undefined;
        const ws = await workers(dp);
        return ws[1]?.pid && ws[1].pid !== victim ? ws : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.equal(now[1]!.restarts, 1);
    assert.equal(now[0]!.pid, before[0]!.pid, "worker 1 was left alone");
    await spread(dp, "/echo/b");
    const metrics = (await http(dp.url("management", "/metrics"))).text;
    assert.equal(metric(metrics, /^harmony_worker_restarts_total (\d+)$/m), 1);
    pids = now.map((w) => w.pid!);
    // SIGHUP to the primary reloads the group, the new worker included.
    process.kill(dp.pid, "SIGHUP");
    const hup = await dp.waitForLog((l) => l.message === "workers reloaded" && l.trigger === "sighup", 30_000);
    assert.deepEqual(
      (hup.workers as { worker: number; ok: boolean }[]).map((w) => [w.worker, w.ok]),
      [
        [1, true],
        [2, true],
      ],
    );
  } finally {
    assert.equal(await dp.stop("SIGTERM"), 0);
  }
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
  assert.ok(dp.logs.some((l) => l.message === "stopped" && l.worker === "primary"));
  assert.equal(dp.logs.filter((l) => l.message === "draining" && typeof l.worker === "number").length, 2);
});

test("proxy.workers: a config the workers refuse at start stops the start with its problems", async () => {
  const dir = writeTree({ "config.toml": config({ broken: true }) });
  const r = await runCli(["--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no_such_endpoint/);
  assert.match(r.stderr, /worker 1 exited during start-up/);
});

test('proxy.workers: the schema takes an integer >= 1 or "auto", nothing else', async () => {
  for (const [v, ok] of [
    ["1", true],
    ['"auto"', true],
    ["0", false],
    ['"many"', false],
  ] as const) {
    const dir = writeTree({ "config.toml": config({ workers: v }) });
    const r = await runCli(["--config", join(dir, "config.toml"), "--check"]);
    assert.equal(r.code, ok ? 0 : 1, `workers = ${v}: ${r.stderr}`);
    if (ok) assert.doesNotMatch(r.stderr, /workers/, `workers = ${v} draws no warning`);
  }
});

test("access-log batches of a group's worker leave in whole lines of at most PIPE_BUF bytes", () => {
  const line = (n: number) => `{"n":${n},"path":"/é${"x".repeat(n % 300)}"}\n`;
  const text = Array.from({ length: 500 }, (_, n) => line(n)).join("");
  const parts = lineChunks(text, 4096);
  assert.ok(parts.length > 1);
  assert.equal(Buffer.concat(parts).toString(), text, "nothing lost, nothing reordered");
  for (const p of parts) {
    assert.ok(p.length <= 4096, `a write of ${p.length} bytes`);
    assert.equal(p[p.length - 1], 0x0a, "every write ends at a line end");
  }
  // A single line longer than the cap goes alone, whole.
  const long = `{"p":"${"y".repeat(10_000)}"}\n`;
  const alone = lineChunks(line(1) + long + line(2), 4096);
  assert.deepEqual(
    alone.map((b) => b.toString()),
    [line(1), long, line(2)],
  );
});

/** dcmtk's echoscu: a C-ECHO from an independent implementation. */
const echoscu = (port: number) =>
  spawnSync("echoscu", ["-to", "10", "-aec", "HARMONY", "127.0.0.1", String(port)]).status === 0;
const hasEchoscu = spawnSync("echoscu", ["--version"]).status === 0;

test(
  "proxy.workers = 2: a DIMSE listener is bound once, by worker 1, and again by its replacement",
  { skip: hasEchoscu ? false : "dcmtk's echoscu is not installed (bash test/peers/peers.sh install)" },
  async () => {
    const port = await freePort();
    const dir = writeTree({
      "config.toml":
        config() +
        `
[pipelines.scp]
endpoints = ["scp"]
backends = ["echo_out"]
[endpoints.scp]
service = "dicom"
[endpoints.scp.options]
port = ${port}
bind_address = "127.0.0.1"
local_aet = "HARMONY"
`,
    });
    const dp = await startDataplane(join(dir, "config.toml"));
    try {
      // Worker 2 started without an EADDRINUSE: it never tried the port.
      const bound = () => dp.logs.filter((l) => l.message === "DICOM listener started");
      assert.deepEqual(
        bound().map((l) => l.worker),
        [1],
      );
      assert.equal((await http(dp.url("management", "/readyz"))).status, 200);
      for (let i = 0; i < 3; i++) assert.ok(echoscu(port), "C-ECHO through worker 1");

      const first = (await workers(dp))[0]!.pid!;
      process.kill(first, "SIGKILL");
      await eventually(
        "a new worker 1, ready, with the DIMSE listener",
        async () => {
          const ws = await workers(dp);
          const ready = (await http(dp.url("management", "/readyz"))).status === 200;
          return ready && ws[0]?.pid !== first && bound().length === 2;
        },
        { timeoutMs: 60_000 },
      );
      assert.deepEqual(
        bound().map((l) => l.worker),
        [1, 1],
      );
      assert.ok(echoscu(port), "C-ECHO through the new worker 1");
    } finally {
      await dp.stop();
    }
  },
);
