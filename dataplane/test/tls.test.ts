/**
 * TLS over real sockets: HTTPS listeners (TLS 1.2+, HTTP/1.1 and HTTP/2 by ALPN), certificates
 * rotated on disk and picked up without a restart (a broken pair is refused and the old one kept),
 * force_https redirects, and mutual TLS towards an upstream. Certificates come from openssl.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { connect as http2Connect } from "node:http2";
import { createServer as createHttpsServer, request as httpsRequest } from "node:https";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { join } from "node:path";
import {
  baseConfig,
  freePort,
  http,
  sleep,
  startDataplane,
  startUpstream,
  tempDir,
  writeTree,
  type Dataplane,
} from "./helpers.js";

const pki = tempDir("harmony-pki-");
function sh(cmd: string): void {
  const r = spawnSync("bash", ["-c", cmd], { cwd: pki, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}
function issue(name: string, cn: string, san: string): void {
  sh(
    `openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${cn}" -keyout ${name}.key -out ${name}.csr 2>/dev/null`,
  );
  sh(
    `openssl x509 -req -in ${name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile <(printf "subjectAltName=${san}") -out ${name}.crt 2>/dev/null`,
  );
}

let dp: Dataplane;
let httpsPort: number;
let plainPort: number;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let mtls: ReturnType<typeof createHttpsServer>;
let mtlsPort: number;
let dir: string;
const ca = () => readFileSync(join(pki, "ca.crt"));

before(async () => {
  sh(
    `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=Harmony Test CA" -keyout ca.key -out ca.crt 2>/dev/null`,
  );
  issue("server1", "gateway one", "IP:127.0.0.1,DNS:localhost");
  issue("server2", "gateway two", "IP:127.0.0.1,DNS:localhost");
  issue("client", "harmony client", "DNS:harmony-client");
  issue("upstream", "upstream", "IP:127.0.0.1");

  upstream = await startUpstream((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ headers: req.headers, url: req.url }));
  });
  mtls = createHttpsServer(
    {
      cert: readFileSync(join(pki, "upstream.crt")),
      key: readFileSync(join(pki, "upstream.key")),
      ca: ca(),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => res.end(`hello ${String((req.socket as TLSSocket).getPeerCertificate().subject.CN)}`),
  );
  await new Promise<void>((r) => mtls.listen(0, "127.0.0.1", r));
  mtlsPort = (mtls.address() as { port: number }).port;

  httpsPort = await freePort();
  plainPort = await freePort();
  dir = writeTree({
    "config.toml": baseConfig(`
[network.secure.http]
bind_address = "127.0.0.1"
bind_port = ${httpsPort}
cert_path = "tls/server.crt"
key_path = "tls/server.key"
cert_reload_ms = 200

[network.plain.http]
bind_address = "127.0.0.1"
bind_port = ${plainPort}
force_https = true
https_port = 8443

[pipelines.app]
networks = ["secure"]
endpoints = ["app_in"]
backends = ["app_out"]

[endpoints.app_in]
service = "http"
options = { path_prefix = "/app" }

[backends.app_out]
service = "http"
options = { base_url = "${upstream.url}" }

[pipelines.mtls]
networks = ["default"]
endpoints = ["mtls_in"]
backends = ["mtls_out"]

[endpoints.mtls_in]
service = "http"
options = { path_prefix = "/mtls" }

[backends.mtls_out]
service = "http"
options = { base_url = "https://127.0.0.1:${mtlsPort}", tls = { ca_path = "${join(pki, "ca.crt")}", cert_path = "${join(pki, "client.crt")}", key_path = "${join(pki, "client.key")}" } }

[pipelines.nocert]
networks = ["default"]
endpoints = ["nocert_in"]
backends = ["nocert_out"]

[endpoints.nocert_in]
service = "http"
options = { path_prefix = "/nocert" }

[backends.nocert_out]
service = "http"
options = { base_url = "https://127.0.0.1:${mtlsPort}", tls = { ca_path = "${join(pki, "ca.crt")}" } }
`),
    "tls/.keep": "",
  });
  copyFileSync(join(pki, "server1.crt"), join(dir, "tls/server.crt"));
  copyFileSync(join(pki, "server1.key"), join(dir, "tls/server.key"));
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await upstream?.close();
  mtls?.closeAllConnections();
  await new Promise<void>((r) => (mtls ? mtls.close(() => r()) : r()));
});

function presented(): Promise<{ cn: string; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port: httpsPort, ca: ca(), servername: "localhost" }, () => {
      const cert = s.getPeerX509Certificate() as X509Certificate;
      resolve({ cn: /CN=(.*)/.exec(cert.subject)![1]!, protocol: s.getProtocol() });
      s.end();
    });
    s.on("error", reject);
  });
}

test("HTTPS with HTTP/1.1: TLS 1.2 or later, the upstream gets the request", async () => {
  const { protocol } = await presented();
  assert.match(protocol ?? "", /^TLSv1\.[23]$/);
  const body = await new Promise<string>((resolve, reject) => {
    const r = httpsRequest({ host: "127.0.0.1", port: httpsPort, path: "/app/hello?x=1", ca: ca() }, (res) => {
      let b = "";
      res.on("data", (c: Buffer) => (b += c.toString()));
      res.on("end", () => resolve(`${res.statusCode} ${b}`));
    });
    r.on("error", reject);
    r.end();
  });
  assert.match(body, /^200 /);
  const seen = JSON.parse(body.slice(4)) as { headers: Record<string, string>; url: string };
  assert.equal(seen.url, "/hello?x=1");
  assert.equal(seen.headers["x-forwarded-proto"], "https");
});

test("HTTP/2 by ALPN: no pseudo-header leaks upstream", async () => {
  const client = http2Connect(`https://127.0.0.1:${httpsPort}`, { ca: ca(), servername: "localhost" });
  try {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = client.request({ ":path": "/app/over-h2", ":method": "GET", "x-trace": "h2" });
      let status = 0;
      let body = "";
      r.on("response", (h) => (status = Number(h[":status"])));
      r.on("data", (c: Buffer) => (body += c.toString()));
      r.on("end", () => resolve({ status, body }));
      r.on("error", reject);
      r.end();
    });
    assert.equal(status, 200);
    const seen = JSON.parse(body) as { headers: Record<string, string>; url: string };
    assert.equal(seen.url, "/over-h2");
    assert.equal(seen.headers["x-trace"], "h2");
    assert.deepEqual(
      Object.keys(seen.headers).filter((k) => k.startsWith(":")),
      [],
    );
    assert.match(seen.headers["x-forwarded-host"] ?? "", new RegExp(`:${httpsPort}$`), "from :authority");
  } finally {
    client.close();
  }
});

test("HTTP/2: a header list beyond 16 KiB or 128 fields is refused and the listener keeps serving", async () => {
  const h2get = (headers: Record<string, string>) => {
    const client = http2Connect(`https://127.0.0.1:${httpsPort}`, { ca: ca(), servername: "localhost" });
    return new Promise<number>((resolve, reject) => {
      const r = client.request({ ":path": "/app/limits", ":method": "GET", ...headers });
      r.on("response", (h) => resolve(Number(h[":status"])));
      r.on("error", reject);
      r.on("close", () => reject(new Error(`stream closed with code ${r.rstCode}`)));
      r.end();
    }).finally(() => client.destroy());
  };
  // Over the advertised SETTINGS_MAX_HEADER_LIST_SIZE: 431, as HTTP/1.1 answers; over 128 pairs: refused stream.
  assert.equal(await h2get({ "x-big": "a".repeat(20 * 1024) }), 431);
  const many: Record<string, string> = {};
  for (let i = 0; i < 200; i++) many[`x-h${i}`] = "v";
  await assert.rejects(h2get(many));
  assert.equal(await h2get({ "x-small": "ok" }), 200);
});

test("TLS 1.1 and plain HTTP on the TLS port are refused", async () => {
  await assert.rejects(
    new Promise<void>((resolve, reject) => {
      const s = tlsConnect(
        { host: "127.0.0.1", port: httpsPort, ca: ca(), maxVersion: "TLSv1.1", minVersion: "TLSv1" },
        () => {
          s.end();
          resolve();
        },
      );
      s.on("error", reject);
    }),
  );
  const plain = await http(`http://127.0.0.1:${httpsPort}/app/x`).catch((e: Error) => e);
  assert.ok(plain instanceof Error || plain.status >= 400, "no plaintext answer from the TLS port");
  assert.equal(dp.proc.exitCode, null);
});

test("a rotated certificate is served without a restart; a broken one is refused and the old kept", async () => {
  assert.equal((await presented()).cn, "gateway one");
  copyFileSync(join(pki, "server2.key"), join(dir, "tls/server.key"));
  copyFileSync(join(pki, "server2.crt"), join(dir, "tls/server.crt"));
  let cn = "";
  for (let i = 0; i < 50 && cn !== "gateway two"; i++) {
    await sleep(100);
    cn = (await presented()).cn;
  }
  assert.equal(cn, "gateway two");
  await dp.waitForLog((l) => l.message === "TLS certificate reloaded");
  writeFileSync(join(dir, "tls/server.crt"), "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
  await dp.waitForLog((l) => l.message === "TLS certificate not reloaded; the previous one stays in use");
  assert.equal((await presented()).cn, "gateway two");
});

test("force_https answers plain requests with a redirect to https", async () => {
  const r = await http(`http://127.0.0.1:${plainPort}/app/x?y=1`, { headers: { host: "gw.example:80" } });
  assert.equal(r.status, 301);
  assert.equal(r.headers.location, "https://gw.example:8443/app/x?y=1");
  const bad = await http(`http://127.0.0.1:${plainPort}/`, { headers: { host: "evil.example/@x" } });
  assert.equal(bad.status, 400);
});

test("mutual TLS to an upstream: with the client certificate 200, without it 502", async () => {
  const ok = await http(dp.url("default", "/mtls/x"));
  assert.equal(ok.status, 200);
  assert.equal(ok.text, "hello harmony client");
  const refused = await http(dp.url("default", "/nocert/x"));
  assert.equal(refused.status, 502);
});
