/**
 * Hot reload under load: 100 config swaps through every trigger (atomic file replace, the
 * kubelet's `..data` symlink swap, SIGHUP, POST /admin/reload) while clients hammer a stable
 * route. Zero failed requests, each new route served, old ones gone, listeners left alone.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Pool } from "undici";
import {
  baseConfig,
  freePort,
  http,
  startDataplane,
  startUpstream,
  tempDir,
  sleep,
  type Dataplane,
} from "./helpers.js";

/** Version `n` of a config: a stable proxied route, a route unique to this version, an echo. */
function version(
  n: number,
  upstream: string,
  opts: { mgmtPort?: number; invalid?: boolean; defaultPort?: number } = {},
): string {
  let cfg = baseConfig("", { id: `reload-${n}` });
  if (opts.defaultPort !== undefined)
    cfg = cfg.replace(/(\[network\.default\.http\][^[]*bind_port = )0/, `$1${opts.defaultPort}`);
  if (opts.mgmtPort !== undefined)
    cfg = cfg.replace(/(\[network\.management\.http\][^[]*bind_port = )0/, `$1${opts.mgmtPort}`);
  return `${cfg}
[pipelines.stable]
networks = ["default"]
endpoints = ["stable_in"]
backends = ["stable_out"]
[endpoints.stable_in]
service = "http"
[endpoints.stable_in.options]
path_prefix = "/stable"
[backends.stable_out]
service = "http"
[backends.stable_out.options]
base_url = "${upstream}"
# Changes every other version, so the backend gets a new pool and the old one is retired under load.
headers = { x-config-version = "${Math.floor(n / 2)}" }

[pipelines.v${n}]
networks = ["default"]
endpoints = [${opts.invalid ? '"missing_endpoint"' : `"v${n}_in"`}]
backends = ["v${n}_out"]
[endpoints.v${n}_in]
service = "echo"
[endpoints.v${n}_in.options]
path_prefix = "/v${n}"
[backends.v${n}_out]
service = "echo"
`;
}

/** Keeps `conns` keep-alive connections busy on `url` until stopped; counts every outcome. */
function hammer(origin: string, path: string, conns = 8) {
  const pool = new Pool(origin, { connections: conns });
  const stats = { ok: 0, failed: 0, errors: [] as string[] };
  let running = true;
  const workers = Array.from({ length: conns }, async () => {
    while (running) {
      try {
        const r = await pool.request({ path, method: "GET" });
        await r.body.text();
        if (r.statusCode === 200) stats.ok++;
        else {
          stats.failed++;
          stats.errors.push(`status ${r.statusCode}`);
        }
      } catch (e) {
        stats.failed++;
        stats.errors.push((e as Error).message);
      }
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(workers);
      await pool.close();
      return stats;
    },
  };
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const status = async (dp: Dataplane, path: string) => (await http(dp.url("default", path))).status;

async function expectServing(dp: Dataplane, n: number) {
  await waitFor(async () => (await status(dp, `/v${n}`)) === 200, `/v${n} to be served`);
  if (n > 0) assert.equal(await status(dp, `/v${n - 1}`), 404, `/v${n - 1} is gone after the swap`);
}

async function withUpstream() {
  return startUpstream((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`ok ${req.headers["x-config-version"] as string}`);
  });
}

test("100 reloads under load through every trigger drop no request", async (t) => {
  const upstream = await withUpstream();
  t.after(() => upstream.close());
  let n = 0;

  // 1. Atomic file replace (write + rename), noticed by the directory watch.
  const plain = tempDir();
  const plainCfg = join(plain, "config.toml");
  writeFileSync(plainCfg, version(n, upstream.url));
  const dpFile = await startDataplane(plainCfg);
  t.after(() => dpFile.stop());

  // 2. The kubelet's ConfigMap layout: config.toml -> ..data/config.toml, ..data -> ..<timestamp>.
  const mount = tempDir();
  const writeData = (content: string, stamp: string) => {
    const dir = join(mount, `..${stamp}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "config.toml"), content);
    symlinkSync(`..${stamp}`, join(mount, "..data_tmp"));
    renameSync(join(mount, "..data_tmp"), join(mount, "..data")); // the atomic swap
    return dir;
  };
  let dataDir = writeData(version(n, upstream.url), "0");
  symlinkSync("..data/config.toml", join(mount, "config.toml"));
  const dpK8s = await startDataplane(join(mount, "config.toml"));
  t.after(() => dpK8s.stop());

  // 3./4. SIGHUP and the admin API, with the file watch off so those triggers stand alone.
  const manual = tempDir();
  const manualCfg = join(manual, "config.toml");
  writeFileSync(manualCfg, version(n, upstream.url));
  const dpManual = await startDataplane(manualCfg, { HARMONY_WATCH: "0" });
  t.after(() => dpManual.stop());

  const loads = [dpFile, dpK8s, dpManual].map((dp) => hammer(`http://127.0.0.1:${dp.ports.default}`, "/stable"));
  const listenersBefore = [dpFile, dpK8s, dpManual].map(
    (dp) => dp.logs.filter((l) => l.message === "listener started").length,
  );

  let reloads = 0;
  for (let round = 0; round < 25; round++) {
    n++;
    const tmp = join(plain, ".config.toml.tmp");
    writeFileSync(tmp, version(n, upstream.url));
    renameSync(tmp, plainCfg);
    await expectServing(dpFile, n);
    reloads++;

    const old = dataDir;
    dataDir = writeData(version(n, upstream.url), String(n));
    rmSync(old, { recursive: true });
    await expectServing(dpK8s, n);
    reloads++;

    writeFileSync(manualCfg, version(2 * n - 1, upstream.url));
    dpManual.proc.kill("SIGHUP");
    await expectServing(dpManual, 2 * n - 1);
    reloads++;

    writeFileSync(manualCfg, version(2 * n, upstream.url));
    const r = await http(dpManual.url("management", "/admin/reload"), { method: "POST" });
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json() as { ok: boolean }).ok, true);
    await expectServing(dpManual, 2 * n);
    reloads++;
  }
  assert.equal(reloads, 100);

  const results = await Promise.all(loads.map((l) => l.stop()));
  for (const [i, s] of results.entries()) {
    assert.equal(s.failed, 0, `data plane ${i}: ${s.failed} failed requests: ${s.errors.slice(0, 5).join("; ")}`);
    assert.ok(s.ok > 100, `data plane ${i} served load during the swaps (${s.ok})`);
  }
  // Listeners were not rebound: no network changed.
  [dpFile, dpK8s, dpManual].forEach((dp, i) => {
    assert.equal(dp.logs.filter((l) => l.message === "listener started").length, listenersBefore[i]);
    assert.equal(dp.logs.filter((l) => l.message === "listener closed").length, 0);
  });
  const metrics = (await http(dpManual.url("management", "/metrics"))).text;
  assert.match(metrics, /harmony_config_reload_total\{result="success",trigger="sighup"\} 25/);
  assert.match(metrics, /harmony_config_reload_total\{result="success",trigger="api"\} 25/);
});

test("an invalid config keeps the old one serving and says why", async (t) => {
  const upstream = await withUpstream();
  t.after(() => upstream.close());
  const dir = tempDir();
  const cfg = join(dir, "config.toml");
  writeFileSync(cfg, version(1, upstream.url));
  const dp = await startDataplane(cfg);
  t.after(() => dp.stop());
  const load = hammer(`http://127.0.0.1:${dp.ports.default}`, "/stable", 4);

  writeFileSync(cfg, version(2, upstream.url, { invalid: true }));
  const info = async () =>
    (await http(dp.url("management", "/admin/info"))).json() as {
      last_reload: { ok: boolean; problems?: string[] };
      config: { hash: string };
    };
  await waitFor(async () => (await info()).last_reload.ok === false, "the failed reload to be recorded");
  const failed = await info();
  assert.ok(
    failed.last_reload.problems?.some((p) =>
      /config\.toml:\d+:\d+: error: pipelines\.v2\.endpoints\[0\]: endpoint "missing_endpoint" is not defined/.test(p),
    ),
    JSON.stringify(failed),
  );
  const metrics = (await http(dp.url("management", "/metrics"))).text;
  assert.match(metrics, /^harmony_config_last_reload_successful 0$/m);
  assert.match(metrics, /harmony_config_reload_total\{result="failure",trigger="file"\} 1/);
  assert.equal(await status(dp, "/v1"), 200, "the last good config keeps serving");
  assert.equal(await status(dp, "/v2"), 404);
  assert.ok(dp.logs.some((l) => l.level === "error" && l.message.includes("previous config keeps serving")));

  writeFileSync(cfg, version(3, upstream.url));
  await waitFor(async () => (await status(dp, "/v3")) === 200, "the fixed config to load");
  assert.match((await http(dp.url("management", "/metrics"))).text, /^harmony_config_last_reload_successful 1$/m);
  const s = await load.stop();
  assert.equal(s.failed, 0, s.errors.slice(0, 5).join("; "));
});

test("in-flight requests finish on the pipeline they started on", async (t) => {
  const slow = await startUpstream((_req, res) => {
    setTimeout(() => res.end("slow-and-old"), 800);
  });
  t.after(() => slow.close());
  const fast = await startUpstream((_req, res) => res.end("new"));
  t.after(() => fast.close());
  const dir = tempDir();
  const cfg = join(dir, "config.toml");
  const withSlow = (target: string) =>
    version(1, target) +
    `\n[pipelines.slow]\nnetworks = ["default"]\nendpoints = ["slow_in"]\nbackends = ["slow_out"]\n[endpoints.slow_in]\nservice = "http"\n[endpoints.slow_in.options]\npath_prefix = "/slow"\n[backends.slow_out]\nservice = "http"\n[backends.slow_out.options]\nbase_url = "${target}"\n`;
  writeFileSync(cfg, withSlow(slow.url));
  const dp = await startDataplane(cfg, { HARMONY_WATCH: "0" });
  t.after(() => dp.stop());

  const inflight = http(dp.url("default", "/slow/x"));
  await sleep(200);
  writeFileSync(cfg, withSlow(fast.url));
  const r = await http(dp.url("management", "/admin/reload"), { method: "POST" });
  assert.equal(r.status, 200);
  assert.equal((await http(dp.url("default", "/slow/x"))).text, "new", "new requests use the new backend");
  const old = await inflight;
  assert.equal(old.status, 200);
  assert.equal(old.text, "slow-and-old", "the in-flight request finished on its original pipeline");
});

test("only a changed network's listener is rebound", async (t) => {
  const upstream = await withUpstream();
  t.after(() => upstream.close());
  const mgmtPort = await freePort();
  const newPort = await freePort();
  const dir = tempDir();
  const cfg = join(dir, "config.toml");
  writeFileSync(cfg, version(1, upstream.url, { mgmtPort }));
  const dp = await startDataplane(cfg, { HARMONY_WATCH: "0" });
  t.after(() => dp.stop());

  writeFileSync(cfg, version(2, upstream.url, { defaultPort: newPort, mgmtPort }));
  const r = await http(`http://127.0.0.1:${mgmtPort}/admin/reload`, { method: "POST" });
  assert.equal(r.status, 200, r.text);
  const closed = dp.logs.filter((l) => l.message === "listener closed");
  assert.deepEqual(
    closed.map((l) => l.network),
    ["default"],
  );
  const started = dp.logs.filter((l) => l.message === "listener started").map((l) => l.network);
  assert.deepEqual(started.sort(), ["default", "default", "management"]);
  assert.equal((await http(`http://127.0.0.1:${newPort}/v2`)).status, 200);
  assert.equal((await http(`http://127.0.0.1:${mgmtPort}/healthz`)).status, 200, "management kept its listener");
});

test("writes to other files beside the config (logs) do not reload it", async (t) => {
  const upstream = await withUpstream();
  t.after(() => upstream.close());
  const dir = tempDir();
  const cfg = join(dir, "config.toml");
  writeFileSync(cfg, version(1, upstream.url));
  const dp = await startDataplane(cfg);
  t.after(() => dp.stop());
  for (let i = 0; i < 10; i++) {
    writeFileSync(join(dir, "harmony.log"), `line ${i}\n`, { flag: "a" });
    writeFileSync(join(dir, "notes.txt"), String(i));
    await sleep(60);
  }
  await sleep(700); // past the debounce and one poll interval
  assert.equal(dp.logs.filter((l) => l.message === "config loaded").length, 1, "only the start-up load");
  // A new pipeline file is config, and is picked up.
  mkdirSync(join(dir, "pipelines"));
  writeFileSync(
    join(dir, "pipelines", "extra.toml"),
    `[pipelines.extra]\nnetworks = ["default"]\nendpoints = ["extra_in"]\nbackends = ["extra_out"]\n[endpoints.extra_in]\nservice = "echo"\n[endpoints.extra_in.options]\npath_prefix = "/extra"\n[backends.extra_out]\nservice = "echo"\n`,
  );
  await waitFor(async () => (await status(dp, "/extra")) === 200, "the new pipeline file to be served");
});
