/**
 * Several certificates on one HTTPS listener, chosen by SNI (Gateway API HTTPS listeners sharing
 * port 443): the served certificate's subject is read with tls.connect for a table of server
 * names, then one pair is rotated on disk and picked up without a restart, and a broken one is
 * refused with the old kept; a reload that adds an SNI pair on a fixed port keeps the listener
 * (connections and all). Certificates come from openssl.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import { baseConfig, freePort, runCli, startDataplane, tempDir, writeTree } from "./helpers.js";

const pki = tempDir("harmony-sni-");
function sh(cmd: string): void {
  const r = spawnSync("bash", ["-c", cmd], { cwd: pki, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}
/** A self-signed pair whose subject CN names it. */
function pair(name: string, cn: string): void {
  sh(
    `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=${cn}" -keyout ${name}.key -out ${name}.crt 2>/dev/null`,
  );
}

/** The CN of the certificate the listener presents for `servername` (none: no SNI sent). */
function presented(port: number, servername?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: "127.0.0.1",
      port,
      servername,
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    });
    s.once("secureConnect", () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(String(cn));
    });
    s.once("error", reject);
  });
}

test("SNI picks exact over wildcard over the default certificate, and each pair reloads on change", async (t) => {
  pair("default", "default cert");
  pair("wild", "wildcard example.com");
  pair("longwild", "wildcard deep.example.com");
  pair("exact", "exact a.example.com");
  pair("exact2", "exact a.example.com v2");
  const dir = tempDir();
  for (const n of ["default", "wild", "longwild", "exact"]) {
    copyFileSync(join(pki, `${n}.crt`), join(dir, `${n}.crt`));
    copyFileSync(join(pki, `${n}.key`), join(dir, `${n}.key`));
  }
  writeTree(
    {
      "config.toml": baseConfig(`
[network.gw443.http]
bind_address = "127.0.0.1"
bind_port = 0
cert_path = "default.crt"
key_path = "default.key"
cert_reload_ms = 200
sni = [ { hostname = "*.example.com", cert_path = "wild.crt", key_path = "wild.key" },
        { hostname = "A.example.com", cert_path = "exact.crt", key_path = "exact.key" },
        { hostname = "*.deep.example.com", cert_path = "longwild.crt", key_path = "longwild.key" } ]

[pipelines.echo]
networks = ["gw443"]
endpoints = ["echo_in"]
backends = ["echo_out"]
[endpoints.echo_in]
service = "http"
options = { path_prefix = "/" }
[backends.echo_out]
service = "echo"
`),
    },
    dir,
  );
  const dp = await startDataplane(join(dir, "config.toml"));
  t.after(() => dp.stop());
  const port = dp.ports.gw443!;

  const table: [string | undefined, string][] = [
    ["a.example.com", "exact a.example.com"],
    ["A.EXAMPLE.COM", "exact a.example.com"],
    ["b.example.com", "wildcard example.com"],
    ["x.y.example.com", "wildcard example.com"],
    ["q.deep.example.com", "wildcard deep.example.com"],
    ["deep.example.com", "wildcard example.com"],
    ["example.com", "default cert"],
    ["other.test", "default cert"],
    ["a.example.com.evil.test", "default cert"],
    [undefined, "default cert"],
  ];
  for (const [name, cn] of table) assert.equal(await presented(port, name), cn, `servername ${name}`);

  // A request over the SNI-chosen certificate is served like any other.
  const status = await new Promise<number>((resolve, reject) => {
    const r = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/x",
        servername: "b.example.com",
        rejectUnauthorized: false,
        headers: { host: "b.example.com" },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode!));
      },
    );
    r.on("error", reject);
    r.end();
  });
  assert.equal(status, 200);

  // Rotate one pair in place: the new certificate is served for its name, the others unchanged.
  copyFileSync(join(pki, "exact2.key"), join(dir, "exact.key"));
  copyFileSync(join(pki, "exact2.crt"), join(dir, "exact.crt"));
  await dp.waitForLog((l) => l.message === "TLS certificate reloaded" && l.sni === "a.example.com");
  assert.equal(await presented(port, "a.example.com"), "exact a.example.com v2");
  assert.equal(await presented(port, "b.example.com"), "wildcard example.com");
  assert.equal(await presented(port), "default cert");

  // A broken pair is refused and the previous one stays in use.
  writeFileSync(join(dir, "exact.crt"), "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
  await dp.waitForLog(
    (l) => l.message === "TLS certificate not reloaded; the previous one stays in use" && l.sni === "a.example.com",
  );
  assert.equal(await presented(port, "a.example.com"), "exact a.example.com v2");
});

test("an sni entry whose pair does not load, or without a default certificate, is refused at load", async () => {
  pair("ok", "ok");
  const dir = tempDir();
  copyFileSync(join(pki, "ok.crt"), join(dir, "ok.crt"));
  copyFileSync(join(pki, "ok.key"), join(dir, "ok.key"));
  writeFileSync(join(dir, "bad.crt"), "not a certificate");
  writeTree(
    {
      "config.toml": baseConfig(`
[network.tls1.http]
bind_port = 0
cert_path = "ok.crt"
key_path = "ok.key"
sni = [ { hostname = "a.example.com", cert_path = "bad.crt", key_path = "ok.key" } ]
[network.tls2.http]
bind_port = 0
sni = [ { hostname = "b.example.com", cert_path = "ok.crt", key_path = "ok.key" } ]
`),
    },
    dir,
  );
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /network\.tls1\.http\.sni\[0\]: certificate and key do not load/);
  assert.match(r.stderr, /network\.tls2\.http\.sni: needs cert_path and key_path/);
});

/** GET / over `agent`: the status, and whether it went over a connection the agent already had. */
function get(port: number, agent: Agent): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const r = httpsRequest({ host: "127.0.0.1", port, path: "/x", agent, rejectUnauthorized: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, reused: r.reusedSocket }));
    });
    r.on("error", reject);
    r.end();
  });
}

test("a reload that changes only certificates (an SNI pair added, as when a Gateway's HTTPS listener gains a hostname) keeps the port open and its connections", async (t) => {
  pair("gw-default", "gateway default");
  pair("gw-default2", "gateway default v2");
  pair("gw-second", "gateway second.example.org");
  const dir = tempDir();
  for (const n of ["gw-default", "gw-default2", "gw-second"]) {
    copyFileSync(join(pki, `${n}.crt`), join(dir, `${n}.crt`));
    copyFileSync(join(pki, `${n}.key`), join(dir, `${n}.key`));
  }
  // A fixed port, as a Gateway's listener has: a changed listener on port 0 would simply move.
  const port = await freePort();
  const config = (extra: string) =>
    baseConfig(`
[network.gw443.http]
bind_address = "127.0.0.1"
bind_port = ${port}
${extra}

[pipelines.echo]
networks = ["gw443"]
endpoints = ["echo_in"]
backends = ["echo_out"]
[endpoints.echo_in]
service = "http"
options = { path_prefix = "/" }
[backends.echo_out]
service = "echo"
`);
  writeTree({ "config.toml": config(`cert_path = "gw-default.crt"\nkey_path = "gw-default.key"`) }, dir);
  const dp = await startDataplane(join(dir, "config.toml"), { HARMONY_WATCH: "0" });
  t.after(() => dp.stop());
  assert.equal(await presented(port, "second.example.org"), "gateway default");

  // A keep-alive connection from before the reload, idle across it.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  assert.deepEqual(await get(port, agent), { status: 200, reused: false });

  // New connections all through the reload: none may be refused.
  const errors: string[] = [];
  let connections = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      try {
        await presented(port, "second.example.org");
        connections++;
      } catch (e) {
        errors.push((e as NodeJS.ErrnoException).code ?? (e as Error).message);
      }
    }
  })();

  writeFileSync(
    join(dir, "config.toml"),
    config(`cert_path = "gw-default2.crt"
key_path = "gw-default2.key"
sni = [ { hostname = "second.example.org", cert_path = "gw-second.crt", key_path = "gw-second.key" } ]`),
  );
  dp.proc.kill("SIGHUP");
  await dp.waitForLog((l) => l.message === "config loaded" && l.trigger === "sighup" && l.changed === true);
  const before = connections;
  // Until the loop has connected after the reload (no timing: a count).
  while (connections < before + 3 && errors.length === 0) await new Promise((r) => setImmediate(r));
  stop = true;
  await loop;

  assert.deepEqual(errors, [], `connections refused or reset during the reload (${connections} made)`);
  assert.equal(await presented(port, "second.example.org"), "gateway second.example.org");
  assert.equal(await presented(port, "other.example.org"), "gateway default v2");
  assert.equal(await presented(port), "gateway default v2");
  // The same server, so the idle connection from before was never closed.
  assert.deepEqual(await get(port, agent), { status: 200, reused: true });
  assert.equal(dp.logs.filter((l) => l.message === "listener closed" && l.network === "gw443").length, 0);
});
