// bench/http-passthrough/profiled.mjs: what cpu.mjs and heap.mjs share: one target (a data plane's
// dist/cli.js, `floor`, or floor-raw.mjs's `floor-raw`, `floor-rawserver`, `floor-rawclient`)
// started pinned to CPU 1 beside the upstream on CPU 0, with an inspector on
// a free loopback port, driven by wrk on CPU 0. Each script only says what it profiles.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const HERE = new URL(".", import.meta.url).pathname;
const FLAGS = (process.env.HARMONY_NODE_FLAGS ?? "--max-semi-space-size=2").split(" ").filter(Boolean);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((r) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => r(port));
    });
  });

/** floor-raw.mjs's targets: [SERVER, CLIENT] (see that file and run.sh). */
const RAW_FLOORS = {
  "floor-raw": ["raw", "raw"],
  "floor-rawserver": ["raw", "undici"],
  "floor-rawclient": ["http", "raw"],
};

/** wrk -t1 -c64 on CPU 0 against /<size>; lua is e.g. ["-s", "report.lua"]. */
export const wrk = (port, seconds, size, lua = []) =>
  execFileSync("taskset", [
    "-c",
    "0",
    "wrk",
    "-t1",
    "-c64",
    `-d${seconds}s`,
    ...lua,
    `http://127.0.0.1:${port}/${size}`,
  ]);

/** The request count wrk's report.lua printed. */
export const wrkRequests = (out) => Number(/"requests":(\d+)/.exec(out)?.[1] ?? 0);

/** A minimal Chrome DevTools Protocol client over Node's global WebSocket. */
async function inspector(url) {
  const ws = new WebSocket(url);
  await new Promise((r, j) => {
    ws.addEventListener("open", r);
    ws.addEventListener("error", j);
  });
  let id = 0;
  const waiting = new Map();
  ws.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    if (m.id && waiting.has(m.id)) {
      waiting.get(m.id)(m.result);
      waiting.delete(m.id);
    }
  });
  return {
    send: (method, params = {}) =>
      new Promise((r) => {
        waiting.set(++id, r);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/**
 * Starts target and its upstream, waits for the inspector and for `GET /<readyPath>` to answer,
 * runs body({ port, proxy, cdp }), then stops both. Options: tmpPrefix (the temp dir's name),
 * readyPath, accessLog (logging.access_log), gcMetric (metrics.gc), client (the backend's `client`, e.g. "llhttp"), http1Server (proxy.http1_server), accessLogFile (stdout to a file, as run.sh does:
 * stdout to a file is written synchronously; otherwise ignored), settleMs (a pause after the kill).
 */
export async function withProfiledTarget(target, o, body) {
  const [up, port, mgmt] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), o.tmpPrefix));
  const upstream = spawn("taskset", ["-c", "0", "node", join(HERE, "upstream.mjs")], {
    env: { ...process.env, PORT: String(up) },
    stdio: "ignore",
  });
  let args = [join(HERE, "floor.mjs")];
  let stdout = "ignore";
  // floor-raw.mjs's targets, as run.sh names them: each side node:http/undici or net + llhttp.
  const raw = RAW_FLOORS[target];
  if (raw) args = [join(HERE, "floor-raw.mjs")];
  else if (target !== "floor") {
    const toml = readFileSync(join(HERE, "harmony.toml.tmpl"), "utf8")
      .replaceAll("@UPSTREAM_PORT@", up)
      .replaceAll("@HARMONY_PORT@", port)
      .replaceAll("@HARMONY_MGMT_PORT@", mgmt)
      .replaceAll("@ACCESS_LOG@", String(o.accessLog))
      // One worker: no `workers` line (run.sh does the same), so an older build reads it too.
      .replace(/^workers = .*\n/m, "")
      // o.client: the backend's upstream engine (`client = "llhttp"`), as run.sh's harmony-llhttp.
      .replace(/^base_url = .*$/m, (line) => (o.client ? `${line}\nclient = "${o.client}"` : line))
      // o.http1Server: the listener's `proxy.http1_server` ("node": node:http reads every request).
      .replace(/^id = "bench"$/m, (line) => (o.http1Server ? `${line}\nhttp1_server = "${o.http1Server}"` : line));
    // o.gcMetric false: `metrics.gc = false` (a build from before that option refuses the table).
    // The config in a directory of its own: the data plane watches it, and an access log written
    // beside it would wake the watcher on every flush (a timer per write in the profile, as run.sh avoids).
    const conf = join(dir, "config");
    mkdirSync(conf);
    writeFileSync(join(conf, "harmony.toml"), o.gcMetric === false ? `${toml}\n[metrics]\ngc = false\n` : toml);
    args = [o.cli ?? target, "--config", join(conf, "harmony.toml")];
    if (o.accessLogFile) stdout = openSync(join(dir, "access.log"), "w");
  }
  const proxy = spawn("taskset", ["-c", "1", "node", ...FLAGS, "--inspect=127.0.0.1:0", ...args], {
    env: {
      ...process.env,
      NODE_ENV: "production",
      PORT: String(port),
      UPSTREAM: `http://127.0.0.1:${up}`,
      ...(raw && { SERVER: raw[0], CLIENT: raw[1] }),
    },
    stdio: ["ignore", stdout, "pipe"],
  });
  try {
    let stderr = "";
    proxy.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
    let wsUrl;
    for (let i = 0; i < 240 && !wsUrl; i++) {
      wsUrl = /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
      if (!wsUrl) await sleep(250);
    }
    let ready = false;
    for (let i = 0; i < 240 && !ready; i++) {
      ready = await fetch(`http://127.0.0.1:${port}/${o.readyPath}`).then(
        (r) => r.ok,
        () => false,
      );
      if (!ready) await sleep(250);
    }
    if (!wsUrl || !ready) throw new Error(`${target} did not start:\n${stderr.slice(-2000)}`);
    const cdp = await inspector(wsUrl);
    const result = await body({ port, proxy, cdp });
    cdp.close();
    return result;
  } finally {
    proxy.kill();
    upstream.kill();
    if (o.settleMs) await sleep(o.settleMs);
  }
}
