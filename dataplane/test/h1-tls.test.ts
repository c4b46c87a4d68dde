/**
 * https:// upstreams through the llhttp engine (`client = "llhttp"`, the default) against undici:
 * real TLS servers with certificates from openssl, and every case run through both engines with
 * the same backend options. Each must give the client the same outcome, and the right one: a good
 * certificate 200; a certificate from another CA or for another name a 502 problem (the TLS error
 * in its detail); an upstream that requires a client certificate 200 with it, 502 without;
 * `insecure_skip_verify` 200 whatever the certificate; `server_name` sent as SNI; the TLS session
 * resumed on the next connection. And ALPN: the llhttp engine offers http/1.1 only, so an upstream
 * that also speaks h2 is spoken to in HTTP/1.1 (undici 8 negotiates h2 there).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createSecureServer, type Http2SecureServer } from "node:http2";
import { createServer, type Server } from "node:https";
import type { TLSSocket } from "node:tls";
import { join } from "node:path";
import { baseConfig, http, proxyPipeline, startDataplane, tempDir, writeTree, type Dataplane } from "./helpers.js";

const pki = tempDir("harmony-h1tls-");
function sh(cmd: string): void {
  const r = spawnSync("bash", ["-c", cmd], { cwd: pki, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}
function ca(name: string, cn: string): void {
  sh(
    `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=${cn}" -keyout ${name}.key -out ${name}.crt 2>/dev/null`,
  );
}
function issue(name: string, cn: string, san: string): void {
  sh(
    `openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${cn}" -keyout ${name}.key -out ${name}.csr 2>/dev/null`,
  );
  sh(
    `openssl x509 -req -in ${name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile <(printf "subjectAltName=${san}") -out ${name}.crt 2>/dev/null`,
  );
}
const file = (name: string) => join(pki, name);
const read = (name: string) => readFileSync(file(name));

let dp: Dataplane;
let plain: Server;
let mtls: Server;
let h2: Http2SecureServer;
const ENGINES = ["undici", "llhttp"] as const;

/** What the upstream saw of the connection, as its answer. */
function describe(socket: TLSSocket, httpVersion: string, url: string, resumed = socket.isSessionReused()) {
  return JSON.stringify({ sni: socket.servername || null, alpn: socket.alpnProtocol, httpVersion, resumed, url });
}

async function listen(s: Server | Http2SecureServer): Promise<number> {
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as { port: number }).port;
}

before(async () => {
  ca("ca", "Harmony Test CA");
  ca("other-ca", "Some Other CA");
  issue("upstream", "upstream", "IP:127.0.0.1,DNS:upstream.test");
  issue("client", "harmony client", "DNS:harmony-client");
  const cert = { cert: read("upstream.crt"), key: read("upstream.key") };
  plain = createServer(cert, (req, res) => {
    // ?close: the next request needs a new connection (and may resume this one's TLS session).
    if (req.url!.includes("close")) res.setHeader("connection", "close");
    res.setHeader("content-type", "application/json");
    res.end(describe(req.socket as TLSSocket, req.httpVersion, req.url!));
  });
  mtls = createServer({ ...cert, ca: read("ca.crt"), requestCert: true, rejectUnauthorized: true }, (req, res) =>
    res.end(`hello ${String((req.socket as TLSSocket).getPeerCertificate().subject.CN)}`),
  );
  h2 = createSecureServer({ ...cert, allowHTTP1: true }, (req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(describe(req.socket as unknown as TLSSocket, req.httpVersion, req.url));
  });
  const [p, m, h] = [await listen(plain), await listen(mtls), await listen(h2)];
  const caPath = `ca_path = "${file("ca.crt")}"`;
  const cases: Record<string, [number, string]> = {
    good: [p, caPath],
    sni: [p, `${caPath}, server_name = "upstream.test"`],
    wrongca: [p, `ca_path = "${file("other-ca.crt")}"`],
    wrongname: [p, `${caPath}, server_name = "other.test"`],
    insecure: [p, `ca_path = "${file("other-ca.crt")}", insecure_skip_verify = true`],
    mtls: [m, `${caPath}, cert_path = "${file("client.crt")}", key_path = "${file("client.key")}"`],
    nocert: [m, caPath],
    h2: [h, caPath],
  };
  let pipelines = "";
  for (const engine of ENGINES)
    for (const [name, [port, tls]] of Object.entries(cases))
      pipelines += proxyPipeline(
        `${name}_${engine}`,
        `/${engine}/${name}`,
        `https://127.0.0.1:${port}`,
        `client = "${engine}"\ntls = { ${tls} }`,
      );
  dp = await startDataplane(join(writeTree({ "config.toml": baseConfig() + pipelines }), "config.toml"));
});

after(async () => {
  await dp?.stop();
  for (const s of [plain, mtls, h2]) {
    (s as Server | undefined)?.closeAllConnections?.();
    s?.close();
  }
});

/** The client's view: status, and the upstream's description or the problem's type and detail. */
async function outcome(path: string): Promise<{ status: number; body: Record<string, unknown> | string }> {
  const r = await http(dp.url("default", path));
  if (!/json/.test(String(r.headers["content-type"]))) return { status: r.status, body: r.text };
  const j = r.json() as Record<string, unknown>;
  return { status: r.status, body: r.status < 400 ? j : { type: j.type, detail: j.detail } };
}

async function both(name: string, path = "/x"): Promise<{ status: number; body: Record<string, unknown> | string }> {
  const u = await outcome(`/undici/${name}${path}`);
  const l = await outcome(`/llhttp/${name}${path}`);
  assert.deepEqual(l, u, `${name}: llhttp and undici differ`);
  return l;
}

const problem = (o: { body: unknown }) => o.body as { type: string; detail: string };

// The URL's host is sent as SNI even when it is an IP address: the backend names it as servername
// for undici (upstream-set.ts), and the llhttp engine does as undici does.
const SNI = "127.0.0.1";

test("a verified upstream certificate: 200, the same through both engines", async () => {
  const o = await both("good");
  assert.equal(o.status, 200);
  assert.deepEqual(o.body, { sni: SNI, alpn: "http/1.1", httpVersion: "1.1", resumed: false, url: "/x" });
});

test("server_name is sent as SNI and the certificate is checked against it", async () => {
  const o = await both("sni");
  assert.equal(o.status, 200);
  assert.equal((o.body as { sni: string }).sni, "upstream.test");
});

test("a certificate from another CA: a 502 problem naming the TLS error, on both engines", async () => {
  const o = await both("wrongca");
  assert.equal(o.status, 502);
  assert.match(problem(o).type, /upstream-error$/);
  assert.match(problem(o).detail, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
});

test("a certificate for another name: a 502 problem, on both engines", async () => {
  const o = await both("wrongname");
  assert.equal(o.status, 502);
  assert.match(problem(o).detail, /ERR_TLS_CERT_ALTNAME_INVALID/);
});

test("insecure_skip_verify accepts a certificate no CA vouches for", async () => {
  assert.equal((await both("insecure")).status, 200);
});

test("an upstream requiring a client certificate: 200 with it, 502 without, on both engines", async () => {
  const ok = await both("mtls");
  assert.deepEqual(ok, { status: 200, body: "hello harmony client" });
  const refused = await both("nocert");
  assert.equal(refused.status, 502);
  assert.match(problem(refused).type, /upstream-error$/);
});

test("the TLS session is resumed on the next connection, as undici does", async () => {
  await both("good", "/first?close");
  const o = await both("good", "/again");
  assert.equal((o.body as { resumed: boolean }).resumed, true);
});

test("ALPN: the llhttp engine speaks HTTP/1.1 to an upstream that also offers h2 (undici picks h2)", async () => {
  const l = await outcome("/llhttp/h2/x");
  assert.equal(l.status, 200);
  assert.deepEqual(l.body, { sni: SNI, alpn: "http/1.1", httpVersion: "1.1", resumed: false, url: "/x" });
  const u = await outcome("/undici/h2/x");
  assert.equal((u.body as { httpVersion: string }).httpVersion, "2.0");
});
