/**
 * Listener changes across a hot reload, under load, over real sockets: a listener moved to another
 * port, TLS toggled on the same port (the new server takes over the listening socket), and a port
 * another process holds (the last good listener serves, /readyz says which listener is not
 * listening, and the bind is retried until the port is free).
 *
 * Each load run has three phases: before (the reload not yet asked for), switching (asked, not yet
 * answered: which listener takes a request then is the race the test is about) and after (answered).
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { Pool } from "undici";
import {
  echoPipeline,
  eventually,
  fixedPortListeners,
  freePort,
  http,
  startDataplane,
  startUpstream,
  tempDir,
  type Dataplane,
} from "./helpers.js";

interface Shape {
  mgmt: number;
  port: number;
  tls?: { cert: string; key: string };
  slow: string;
}

function config(s: Shape): string {
  const tls = s.tls ? `cert_path = "${s.tls.cert}"\nkey_path = "${s.tls.key}"\n` : "";
  return `[proxy]
id = "reload-listeners"
# A request in flight on a replaced listener has this long; the one held across the reload must not be cut.
shutdown_timeout_ms = 30000
${fixedPortListeners(s.mgmt, s.port)}${tls}
${echoPipeline("hello", "/hello")}
[pipelines.slow]
networks = ["default"]
endpoints = ["slow_in"]
backends = ["slow_out"]
[endpoints.slow_in]
service = "http"
options = { path_prefix = "/slow" }
[backends.slow_out]
service = "http"
options = { base_url = "${s.slow}" }
`;
}

/** A self-signed certificate for 127.0.0.1; clients trust it as their one CA. */
function selfSigned(dir: string): { cert: string; key: string; ca: Buffer } {
  const cert = join(dir, "tls.crt");
  const key = join(dir, "tls.key");
  execFileSync("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"],
    ...["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
  ]);
  return { cert, key, ca: readFileSync(cert) };
}

type Phase = "before" | "switching" | "after";
type Send = () => Promise<number>;

/** Requests counted by the phase they started in; every error message kept. */
class Load {
  phase: Phase = "before";
  readonly ok: Record<Phase, number> = { before: 0, switching: 0, after: 0 };
  readonly failed: Record<Phase, string[]> = { before: [], switching: [], after: [] };
  private running = true;
  private readonly loops: Promise<void>[] = [];

  /**
   * `workers` loops, one request at a time: `before` (none: idle) until the reload is answered,
   * `after` from then on. `pauseWhileSwitching`: a loop that opens a connection per request waits out the
   * switch (a connection the kernel queued on a listening socket that then closes is reset).
   */
  run(name: string, workers: number, before: Send | undefined, after: Send, pauseWhileSwitching = false): void {
    for (let i = 0; i < workers; i++) {
      this.loops.push(
        (async () => {
          while (this.running) {
            const phase = this.phase;
            const send = phase === "after" ? after : before;
            if (!send || (phase === "switching" && pauseWhileSwitching)) {
              await new Promise((r) => setTimeout(r, 5));
              continue;
            }
            try {
              const status = await send();
              if (status === 200) this.ok[phase]++;
              else this.failed[phase].push(`${name}: status ${status}`);
            } catch (e) {
              const err = e as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
              this.failed[phase].push(`${name}: ${err.code ?? err.cause?.code ?? ""} ${err.message}`);
            }
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** A fresh connection per request (refusals show as such). */
const fresh =
  (port: number, ca?: Buffer): Send =>
  () =>
    new Promise((resolve, reject) => {
      const opts = { host: "127.0.0.1", port, path: "/hello", agent: false as const };
      const req = ca ? httpsRequest({ ...opts, ca }) : httpRequest(opts);
      req.on("response", (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });

/** Keep-alive connections (undici): a connection the server cut under a request in transit shows as a failure. */
function pooled(origin: string, ca?: Buffer, connections = 4): { send: Send; close: () => Promise<void> } {
  const pool = new Pool(origin, { connections, ...(ca ? { connect: { ca } } : {}) });
  return {
    send: async () => {
      const r = await pool.request({ path: "/hello", method: "GET" });
      await r.body.text();
      return r.statusCode;
    },
    close: () => pool.close(),
  };
}

/**
 * TCP connects in a loop until stopped (a few ms apart: the probe's own closed sockets must not use
 * up the ephemeral ports); counts refusals. A close-then-bind leaves the port closed for at least
 * one 50 ms bind retry, which this sees.
 */
function probe(port: number): { refused: number; connected: number; stop: () => Promise<void> } {
  const stats = { refused: 0, connected: 0, stop: async () => {} };
  let running = true;
  const loop = (async () => {
    while (running) {
      await new Promise<void>((resolve) => {
        const s = connect(port, "127.0.0.1");
        s.once("connect", () => {
          stats.connected++;
          s.destroy();
          resolve();
        });
        s.once("error", (e: NodeJS.ErrnoException) => {
          if (e.code === "ECONNREFUSED") stats.refused++;
          resolve();
        });
      });
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  stats.stop = async () => {
    running = false;
    await loop;
  };
  return stats;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

async function reload(
  mgmt: number,
): Promise<{ status: number; body: { ok: boolean; error?: string; problems?: string[] } }> {
  const r = await http(`http://127.0.0.1:${mgmt}/admin/reload`, { method: "POST" });
  return { status: r.status, body: r.json() as { ok: boolean; error?: string; problems?: string[] } };
}

async function readyz(mgmt: number): Promise<{ status: number; reason?: string }> {
  const r = await http(`http://127.0.0.1:${mgmt}/readyz`);
  return { status: r.status, reason: (r.json() as { reason?: string }).reason };
}

/** Runs the switch: load in "before" until it has served, the reload, load in "after" until it has served. */
async function across(load: Load, mgmt: number, dp: Dataplane): Promise<void> {
  const context = () => JSON.stringify({ ok: load.ok, failed: load.failed }) + "\n" + dp.stderr();
  await eventually("load before the reload", () => load.ok.before >= 40, { context });
  load.phase = "switching";
  const r = await reload(mgmt);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  load.phase = "after";
  await eventually("load after the reload", () => load.ok.after >= 40, { context });
  await load.stop();
}

/** An upstream that holds each request until the test releases it: a request in flight across the reload. */
async function slowUpstream() {
  let arrive: () => void = () => {};
  let release: () => void = () => {};
  let arrived = new Promise<void>((r) => (arrive = r));
  let released = new Promise<void>((r) => (release = r));
  const up = await startUpstream((_req, res) => {
    arrive();
    void released.then(() => res.end("slow"));
  });
  return {
    ...up,
    /** Resolves once a request is held. */
    arrived: () => arrived,
    /** Lets the held requests answer, and holds the next ones. */
    release: () => {
      release();
      arrived = new Promise<void>((r) => (arrive = r));
      released = new Promise<void>((r) => (release = r));
    },
  };
}

/**
 * A data plane (no file watch: reloads are asked for) serving on p1, with p2 free for the listener
 * to move to; stopped after the test.
 */
async function startOnP1(
  t: TestContext,
  slow: string,
): Promise<{ mgmt: number; p1: number; p2: number; cfg: string; dp: Dataplane }> {
  const [mgmt, p1, p2] = [await freePort(), await freePort(), await freePort()];
  const cfg = join(tempDir(), "config.toml");
  writeFileSync(cfg, config({ mgmt, port: p1, slow }));
  const dp = await startDataplane(cfg, { HARMONY_WATCH: "0" });
  t.after(() => dp.stop());
  return { mgmt, p1, p2, cfg, dp };
}

test("a listener moved to another port: no request fails on the old port until the switch, nor on the new one after", async (t) => {
  const slow = await slowUpstream();
  t.after(() => slow.close());
  const { mgmt, p1, p2, cfg, dp } = await startOnP1(t, slow.url);

  const oldPool = pooled(`http://127.0.0.1:${p1}`, undefined, 8);
  const newPool = pooled(`http://127.0.0.1:${p2}`);
  t.after(() => Promise.all([oldPool.close(), newPool.close()]));
  const load = new Load();
  // The old address: keep-alive connections only. A connection the kernel has queued on a
  // listening socket is reset when that socket closes, which a move must do; the listener cannot
  // prevent that for a connection opened at that instant, only for the ones it has accepted.
  load.run("keep-alive", 8, oldPool.send, newPool.send);
  load.run("fresh", 2, undefined, fresh(p2));
  const inflight = http(`http://127.0.0.1:${p1}/slow`);
  await slow.arrived();

  writeFileSync(cfg, config({ mgmt, port: p2, slow: slow.url }));
  await across(load, mgmt, dp);
  slow.release();

  const summary = JSON.stringify({ ok: load.ok, failed: load.failed });
  assert.deepEqual(load.failed.before, [], summary);
  assert.deepEqual(load.failed.after, [], summary);
  // While switching, the old port stops accepting (refused); nothing it had accepted may fail.
  assert.deepEqual(
    load.failed.switching.filter((e) => !/ECONNREFUSED/.test(e)),
    [],
    summary,
  );
  const old = await inflight;
  assert.equal(old.status, 200, "the request in flight on the old listener finished");
  assert.equal(old.text, "slow");
  assert.equal(await accepts(p1), false, "the old port is closed after the move");
  assert.equal((await readyz(mgmt)).status, 200);
});

test("same port, other settings (TLS on, TLS off, a timeout): the port never refuses or resets a connection, nothing accepted fails", async (t) => {
  const slow = await slowUpstream();
  t.after(() => slow.close());
  const dir = tempDir();
  const pair = selfSigned(dir);
  const [mgmt, port] = [await freePort(), await freePort()];
  const cfg = join(dir, "config.toml");
  const plain = config({ mgmt, port, slow: slow.url });
  const configs = {
    plain,
    tls: config({ mgmt, port, slow: slow.url, tls: pair }),
    // Same protocol, another listener setting: the listener is replaced all the same.
    "plain, other timeout": plain.replace("[logging]", "client_header_timeout_ms = 30000\n[logging]"),
  };
  writeFileSync(cfg, plain);
  const dp = await startDataplane(cfg, { HARMONY_WATCH: "0" });
  t.after(() => dp.stop());

  for (const [from, to] of [
    ["plain", "tls"],
    ["tls", "plain"],
    ["plain", "plain, other timeout"],
  ] as const) {
    const ca = (side: keyof typeof configs) => (side === "tls" ? pair.ca : undefined);
    const origin = (side: keyof typeof configs) => `${side === "tls" ? "https" : "http"}://127.0.0.1:${port}`;
    const fromPool = pooled(origin(from), ca(from));
    const toPool = pooled(origin(to), ca(to));
    const tcp = probe(port);
    const load = new Load();
    load.run("fresh", 4, fresh(port, ca(from)), fresh(port, ca(to)));
    load.run("keep-alive", 4, fromPool.send, toPool.send);
    const inflight = new Promise<number>((resolve, reject) => {
      const opts = { host: "127.0.0.1", port, path: "/slow", agent: false as const };
      const req = from === "tls" ? httpsRequest({ ...opts, ca: pair.ca }) : httpRequest(opts);
      req.on("response", (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end();
    });
    await slow.arrived();

    writeFileSync(cfg, configs[to]);
    await across(load, mgmt, dp);
    slow.release();
    await tcp.stop();
    await Promise.all([fromPool.close(), toPool.close()]);

    const summary = JSON.stringify({ from, to, ok: load.ok, failed: load.failed, tcp });
    const all = [...load.failed.before, ...load.failed.switching, ...load.failed.after];
    assert.equal(tcp.refused, 0, `connections refused on the port during the reload: ${summary}`);
    assert.ok(tcp.connected > 0, summary);
    // Refused, or reset (a queued connection when the listening socket closed; a connection cut).
    assert.deepEqual(
      all.filter((e) => /ECONNREFUSED|read ECONNRESET|other side closed/.test(e)),
      [],
      summary,
    );
    // Keep-alive connections were accepted long before: the old listener serves them to the end.
    assert.deepEqual(
      load.failed.before.filter((e) => e.startsWith("keep-alive")),
      [],
      summary,
    );
    assert.deepEqual(load.failed.after, [], summary);
    if (ca(from) === ca(to)) {
      assert.deepEqual(all, [], `same protocol: nothing fails at all: ${summary}`);
    } else {
      // A connection opened (or reopened after the old listener's Connection: close) as the socket
      // changes hands is accepted by the new listener, which speaks the other protocol: that client
      // fails the handshake, as any client speaking the old protocol to the port from now on does.
      // Nothing else may fail.
      assert.deepEqual(
        all.filter((e) => !/EPROTO|WRONG_VERSION_NUMBER|socket hang up/.test(e)),
        [],
        summary,
      );
    }
    assert.equal(await inflight, 200, `the request in flight on the ${from} listener finished`);
    assert.ok(
      dp.logs.some((l) => l.message === "listener started" && l.network === "default" && l.socket === "taken over"),
      "the new listener took over the old one's socket",
    );
  }
  assert.equal((await readyz(mgmt)).status, 200);
});

async function squat(port: number): Promise<Server> {
  const s = createServer((c) => c.destroy());
  s.listen(port, "127.0.0.1");
  await once(s, "listening");
  return s;
}

test("a reload onto a port another process holds: the last good listener serves, /readyz names the listener, the retry binds once the port is free", async (t) => {
  const slow = await startUpstream((_req, res) => res.end("fast"));
  t.after(() => slow.close());
  const { mgmt, p1, p2, cfg, dp } = await startOnP1(t, slow.url);
  const squatter = await squat(p2);
  let squatting = true;
  t.after(() => (squatting ? new Promise<void>((r) => squatter.close(() => r())) : undefined));

  writeFileSync(
    cfg,
    config({ mgmt, port: p2, slow: slow.url }).replace('path_prefix = "/hello"', 'path_prefix = "/hi"'),
  );
  const r = await reload(mgmt);
  assert.equal(r.status, 422, JSON.stringify(r.body));
  assert.equal(r.body.ok, false);
  // Located at the key that asks for the port, with what serves meanwhile.
  assert.match(
    r.body.problems?.join("\n") ?? "",
    new RegExp(
      `config\\.toml:\\d+:\\d+: error: network\\.default\\.http\\.bind_port: network "default" \\(127\\.0\\.0\\.1:${p2}\\).*EADDRINUSE.*last good listener \\(127\\.0\\.0\\.1:${p1}\\) keeps serving`,
    ),
  );
  // The rest of the config is live, on the last good listener.
  assert.equal((await http(`http://127.0.0.1:${p1}/hi`)).status, 200, "the last good listener serves the new routes");
  assert.equal((await http(`http://127.0.0.1:${p1}/hello`)).status, 404);
  const notReady = await readyz(mgmt);
  assert.equal(notReady.status, 503);
  assert.equal(notReady.reason, `not listening: network "default" (127.0.0.1:${p2})`);
  const metrics = (await http(`http://127.0.0.1:${mgmt}/metrics`)).text;
  assert.match(metrics, /^harmony_listeners_unbound 1$/m);
  assert.match(metrics, /^harmony_config_last_reload_successful 0$/m);
  // Retried meanwhile, and still failing.
  await eventually("a failed retry", async () =>
    /harmony_listener_bind_retries_total\{network="default",result="failed"\} [1-9]/.test(
      (await http(`http://127.0.0.1:${mgmt}/metrics`)).text,
    ),
  );
  assert.equal((await http(`http://127.0.0.1:${p1}/hi`)).status, 200);

  await new Promise<void>((r) => squatter.close(() => r()));
  squatting = false;
  const bound = await dp.waitForLog((l) => l.message === "listener bound after retry", 30_000);
  assert.equal(bound.network, "default");
  assert.equal(bound.port, p2);
  await eventually("/readyz 200 after the retry bound the listener", async () => (await readyz(mgmt)).status === 200);
  assert.equal((await http(`http://127.0.0.1:${p2}/hi`)).status, 200);
  await eventually("the last good listener to be let go", async () => !(await accepts(p1)));
  const after = (await http(`http://127.0.0.1:${mgmt}/metrics`)).text;
  assert.match(after, /^harmony_listeners_unbound 0$/m);
  assert.match(after, /harmony_listener_bind_retries_total\{network="default",result="bound"\} 1/);
  assert.match(after, /^harmony_config_last_reload_successful 1$/m);
  const info = (await http(`http://127.0.0.1:${mgmt}/admin/info`)).json() as {
    last_reload: { ok: boolean; trigger: string };
  };
  assert.deepEqual([info.last_reload.ok, info.last_reload.trigger], [true, "bind-retry"]);
});
