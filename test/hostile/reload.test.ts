/**
 * Reloads that cannot bind what they ask for: the port is held by another process, a DICOM port is
 * busy, a same-port change is blocked. Each must fail the reload (a DICOM listener: as a whole; an
 * HTTP listener: that listener, its last good one serving) while every old listener keeps serving,
 * and /readyz must say whether every configured listener is bound.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execSync } from "node:child_process";
import { once } from "node:events";
import { rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import { join } from "node:path";
import { cEcho } from "../../dataplane/src/protocols/dimse-client.js";
import { echoPipeline, freePort, http, startDataplane, tempDir, type Dataplane } from "../../dataplane/test/helpers.js";
import { assertStillServes } from "./harness.js";

interface Shape {
  port: number;
  address?: string;
  otherPort?: number;
  dicomPort?: number;
  tls?: { cert: string; key: string };
}

/** Management on an ephemeral loopback port; `default` (and `other`) where `s` says; echo routes. */
function config(s: Shape): string {
  const tls = s.tls ? `cert_path = "${s.tls.cert}"\nkey_path = "${s.tls.key}"\n` : "";
  let cfg = `[proxy]
id = "hostile-reload"
shutdown_timeout_ms = 2000
[logging]
log_level = "info"
[management]
enabled = true
network = "management"
[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0
[network.default.http]
bind_address = "${s.address ?? "127.0.0.1"}"
bind_port = ${s.port}
${tls}
${echoPipeline("hello", "/hello", `"default"${s.otherPort ? ', "other"' : ""}`)}`;
  if (s.otherPort) cfg += `[network.other.http]\nbind_address = "127.0.0.1"\nbind_port = ${s.otherPort}\n`;
  if (s.dicomPort)
    cfg += `[pipelines.scp]
endpoints = ["scp_in"]
backends = ["scp_out"]
[endpoints.scp_in]
service = "dicom"
options = { port = ${s.dicomPort}, bind_address = "127.0.0.1", local_aet = "HARMONY" }
[backends.scp_out]
service = "echo"
`;
  return cfg;
}

async function squat(port: number, host = "127.0.0.1"): Promise<Server> {
  const s = createServer((c) => c.destroy());
  s.listen(port, host);
  await once(s, "listening");
  return s;
}

const closeServer = (s: Server) => new Promise<void>((r) => s.close(() => r()));

interface Reload {
  status: number;
  body: { ok: boolean; error?: string };
}

async function reload(dp: Dataplane): Promise<Reload> {
  const r = await http(dp.url("management", "/admin/reload"), { method: "POST" });
  return { status: r.status, body: r.json() as Reload["body"] };
}

async function readyz(dp: Dataplane): Promise<{ status: number; reason?: string }> {
  const r = await http(dp.url("management", "/readyz"));
  return { status: r.status, reason: (r.json() as { reason?: string }).reason };
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

async function start(shape: Shape): Promise<{ dp: Dataplane; cfg: string }> {
  const cfg = join(tempDir(), "config.toml");
  writeFileSync(cfg, config(shape));
  return { dp: await startDataplane(cfg, { HARMONY_WATCH: "0" }), cfg };
}

test("a reload onto a port another process holds fails, the old port keeps serving, /readyz says which listener is not", async (t) => {
  const [p1, p2] = [await freePort(), await freePort()];
  const { dp, cfg } = await start({ port: p1 });
  t.after(() => dp.stop());
  const squatter = await squat(p2);
  t.after(() => closeServer(squatter));

  writeFileSync(cfg, config({ port: p2 }));
  const r = await reload(dp);
  assert.equal(r.status, 422);
  assert.equal(r.body.ok, false);
  assert.match(r.body.error ?? "", new RegExp(`network "default" \\(127\\.0\\.0\\.1:${p2}\\).*EADDRINUSE`));
  assert.equal((await http(`http://127.0.0.1:${p1}/hello`)).status, 200, "the old port still serves");
  assert.deepEqual(await readyz(dp), {
    status: 503,
    reason: `not listening: network "default" (127.0.0.1:${p2})`,
  });
  const info = (await http(dp.url("management", "/admin/info"))).json() as { last_reload: Reload["body"] };
  assert.equal(info.last_reload.ok, false);
  assert.match(info.last_reload.error ?? "", new RegExp(`127\\.0\\.0\\.1:${p2}`));
  await assertStillServes(dp, "default", "/hello");

  // Once the port is free the same config loads, and the old port is let go.
  await closeServer(squatter);
  assert.equal((await reload(dp)).body.ok, true);
  assert.equal((await http(`http://127.0.0.1:${p2}/hello`)).status, 200);
  assert.equal(await accepts(p1), false, "the old port is closed after the move");
});

test("a DICOM listener that cannot bind on reload fails the reload; the old one keeps answering", async (t) => {
  const [http1, d1, d2] = [await freePort(), await freePort(), await freePort()];
  const { dp, cfg } = await start({ port: http1, dicomPort: d1 });
  t.after(() => dp.stop());
  const squatter = await squat(d2);
  t.after(() => closeServer(squatter));
  const echo = (port: number) =>
    cEcho({
      host: "127.0.0.1",
      port,
      calledAet: "HARMONY",
      callingAet: "ECHOSCU",
      connectTimeoutMs: 5000,
      associationTimeoutMs: 5000,
    });
  assert.equal(await echo(d1), 0);

  writeFileSync(cfg, config({ port: http1, dicomPort: d2 }));
  const r = await reload(dp);
  assert.equal(r.status, 422, JSON.stringify(r.body));
  assert.equal(r.body.ok, false);
  assert.match(r.body.error ?? "", new RegExp(`endpoint "scp_in".*EADDRINUSE.*127\\.0\\.0\\.1:${d2}`));
  assert.equal(await echo(d1), 0, "the old DICOM listener still answers C-ECHO");
  assert.equal((await readyz(dp)).status, 200);
  await assertStillServes(dp, "default", "/hello");

  await closeServer(squatter);
  assert.equal((await reload(dp)).body.ok, true);
  assert.equal(await echo(d2), 0, "the DICOM listener moved once its port was free");
  assert.equal(await accepts(d1), false);
});

test("two networks that swap ports reload without a gap in configuration", async (t) => {
  const [p1, p2] = [await freePort(), await freePort()];
  const { dp, cfg } = await start({ port: p1, otherPort: p2 });
  t.after(() => dp.stop());
  writeFileSync(cfg, config({ port: p2, otherPort: p1 }));
  const r = await reload(dp);
  assert.equal(r.body.ok, true, JSON.stringify(r.body));
  for (const port of [p1, p2]) assert.equal((await http(`http://127.0.0.1:${port}/hello`)).status, 200);
  assert.equal((await readyz(dp)).status, 200);
});

test("a same-port change that another process blocks is rolled back to the old listener", async (t) => {
  const port = await freePort();
  const { dp, cfg } = await start({ port });
  t.after(() => dp.stop());
  // 127.0.0.2:port may coexist with our 127.0.0.1:port, but blocks the wildcard address.
  const squatter = await squat(port, "127.0.0.2");
  t.after(() => closeServer(squatter));

  writeFileSync(cfg, config({ port, address: "0.0.0.0" }));
  const r = await reload(dp);
  assert.equal(r.body.ok, false);
  assert.match(r.body.error ?? "", /EADDRINUSE/);
  assert.equal((await http(`http://127.0.0.1:${port}/hello`)).status, 200, "the old listener is back");
  // Back as the last good listener: the configured one (the wildcard) is not listening.
  assert.deepEqual(await readyz(dp), { status: 503, reason: `not listening: network "default" (0.0.0.0:${port})` });
  await assertStillServes(dp, "default", "/hello");
});

test("a blocked same-port change rolls back to the old TLS listener even after its certificate files are gone", async (t) => {
  // This used to be the way to lose a listener (the rollback re-read the removed files). Listeners
  // now bind from the certificate the config build read (runtime/tls-certs.ts), so the old listener
  // comes back whole, as the last good one: /readyz says the configured (wildcard) one is not listening.
  const dir = tempDir();
  const pair = (n: string) => {
    execSync(
      `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=localhost" -keyout ${n}.key -out ${n}.crt 2>/dev/null`,
      { cwd: dir, shell: "/bin/bash" },
    );
    return { cert: join(dir, `${n}.crt`), key: join(dir, `${n}.key`) };
  };
  const [a, b] = [pair("a"), pair("b")];
  const port = await freePort();
  const { dp, cfg } = await start({ port, tls: a });
  t.after(() => dp.stop());
  const squatter = await squat(port, "127.0.0.2");
  t.after(() => closeServer(squatter));

  rmSync(a.cert);
  rmSync(a.key);
  writeFileSync(cfg, config({ port, address: "0.0.0.0", tls: b }));
  assert.equal((await reload(dp)).body.ok, false);
  assert.equal((await readyz(dp)).status, 503);
  assert.equal(await accepts(port), true, "the old listener is back, from the certificate it was built with");

  const moved = await freePort();
  writeFileSync(cfg, config({ port: moved, tls: b }));
  assert.equal((await reload(dp)).body.ok, true);
  assert.equal((await readyz(dp)).status, 200);
  assert.equal(await accepts(moved), true);
  assert.equal(dp.proc.exitCode, null);
});

test("at start-up a listener that cannot bind stops the process with the address named", async (t) => {
  for (const shape of [
    (busy: number) => ({ port: busy }),
    async (busy: number) => ({ port: await freePort(), dicomPort: busy }),
  ]) {
    const busy = await freePort();
    const squatter = await squat(busy);
    t.after(() => closeServer(squatter));
    const cfg = join(tempDir(), "config.toml");
    writeFileSync(cfg, config(await shape(busy)));
    await assert.rejects(startDataplane(cfg, { HARMONY_WATCH: "0" }), (e: Error) => {
      assert.match(e.message, /exited with 1 before starting/);
      assert.match(e.message, new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${busy}`));
      return true;
    });
  }
});
