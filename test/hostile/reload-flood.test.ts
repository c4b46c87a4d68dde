/**
 * A flood of reloads: 50 config writes in a burst, each also asking for a reload through the admin
 * API, every one of them changing both listeners on their fixed ports (so every reload hands the
 * listening sockets over to new servers and retires the old ones) while requests run. Afterwards
 * no file descriptor is left behind, nothing failed, and the data plane still serves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Pool } from "undici";
import {
  echoPipeline,
  eventually,
  fixedPortListeners,
  freePort,
  http,
  startDataplane,
  tempDir,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, fdCount } from "./harness.js";

function config(mgmt: number, port: number, n: number): string {
  return `[proxy]
id = "reload-flood"
# What a retired listener still has open gets this long: the admin requests queued behind 50
# reloads are on listeners that later reloads retire, and must not be cut.
shutdown_timeout_ms = 30000
# Changes each time: a listener setting, so both listeners are replaced on their ports.
client_header_timeout_ms = ${20_000 + n}
${fixedPortListeners(mgmt, port)}${echoPipeline("hello", "/hello")}${echoPipeline(`v${n}`, `/v${n}`)}`;
}

test("50 config writes in a burst, each a listener change, under load: no fd leak, no failed request, still serves", async (t) => {
  const [mgmt, port] = [await freePort(), await freePort()];
  const dir = tempDir();
  const cfg = join(dir, "config.toml");
  const write = (n: number) => {
    writeFileSync(`${cfg}.tmp`, config(mgmt, port, n));
    renameSync(`${cfg}.tmp`, cfg);
  };
  write(0);
  const dp = await startDataplane(cfg);
  t.after(() => dp.stop());
  // No keep-alive from the test's side: what stays open afterwards is the data plane's doing.
  const admin = (path: string, method = "GET") => http(`http://127.0.0.1:${mgmt}${path}`, { method, agent: false });
  const hello = (path: string) => http(dp.url("default", path), { agent: false });

  // Warm: one listener change first, so what a reload opens once (and keeps) is in the baseline.
  write(1);
  await admin("/admin/reload", "POST");
  await eventually("/v1 served", async () => (await hello("/v1")).status === 200);
  const baseline = await fdCount(dp.pid);

  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
  let poolOpen = true;
  t.after(() => (poolOpen ? pool.close() : undefined));
  const stats = { ok: 0, failed: [] as string[] };
  let running = true;
  const loops = Array.from({ length: 8 }, async () => {
    while (running) {
      try {
        const r = await pool.request({ path: "/hello", method: "GET" });
        await r.body.text();
        if (r.statusCode === 200) stats.ok++;
        else stats.failed.push(`status ${r.statusCode}`);
      } catch (e) {
        stats.failed.push((e as Error).message);
      }
    }
  });

  const reloads: Promise<unknown>[] = [];
  for (let n = 2; n < 52; n++) {
    write(n);
    // Not awaited: the reloads queue up behind each other while the watcher adds its own.
    reloads.push(admin("/admin/reload", "POST").catch((e: Error) => e));
  }
  const answers = await Promise.all(reloads);
  for (const a of answers) {
    assert.ok(!(a instanceof Error), `the admin API answered every reload: ${String(a)}`);
    assert.equal((a as { status: number }).status, 200, (a as { text: string }).text);
  }
  await eventually("the last config served", async () => (await hello("/v51")).status === 200);
  running = false;
  await Promise.all(loops);
  poolOpen = false;
  await pool.close();

  assert.deepEqual(stats.failed, [], `${stats.failed.length} of ${stats.ok + stats.failed.length} requests failed`);
  assert.ok(stats.ok > 0);
  // Every connection has closed (the clients' own), so the retired listeners are gone with theirs.
  const fds = await eventually(
    "the descriptors to come back to the baseline",
    async () => {
      const n = await fdCount(dp.pid);
      return n <= baseline ? n : false;
    },
    { context: () => `baseline ${baseline}, now: see /proc/${dp.pid}/fd` },
  );
  assert.ok(fds <= baseline);
  const reloadsRun = (await admin("/metrics")).text.match(/^harmony_config_reload_total\{[^}]*\} (\d+)$/gm);
  t.diagnostic(
    `fds: baseline ${baseline}, after ${fds}; requests ${stats.ok}; reload counters ${(reloadsRun ?? []).join(", ")}`,
  );
  assert.equal((await admin("/readyz")).status, 200);
  await assertStillServes(dp, "default", "/hello");
});
