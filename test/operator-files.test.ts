/**
 * Files from Kubernetes, on a real kube-apiserver with the data plane as a host process fed the
 * kubelet's way (test/syncer.ts, ConfigMap and Secret volumes side by side): HTTPS on a network
 * whose certificate is a kubernetes.io/tls Secret, renewed without a restart while a request is in
 * flight; a network whose Secret is missing reported and left out while the others serve; a
 * jwt_auth public key from a ConfigMap; an upstream CA from a Secret; a JOLT spec inline; a
 * misspelt option refused with its spec path; and Ready counting the Deployment's own replicas
 * when nothing in the gateway sets them (an HPA's or `kubectl scale`'s).
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer, request as httpsRequest, type Server } from "node:https";
import { connect as tlsConnect } from "node:tls";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { SignJWT } from "jose";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { POD_READY, startSyncer, type Syncer } from "./syncer.js";
import {
  ROOT,
  eventually as poll,
  freePort,
  startDataplane,
  tempDir,
  type Dataplane,
} from "../dataplane/test/helpers.js";

const NS = "files";
const API = "harmony.runbeam.io/v1alpha1";

let cp: ControlPlane;
let operator: ChildProcess | undefined;
let log = "";
let dp: Dataplane | undefined;
const syncers: Syncer[] = [];
let upstream: Server;
let release: (() => void) | undefined;
const ports = { secure: 0, plain: 0, broken: 0, mgmt: 0 };
const pki = tempDir("harmony-pki-");
const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" });

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${log.slice(-4000)}` });

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, "-o", "json"])) as T;
type Cond = { type: string; status: string; reason: string; message: string };
const condition = async (kind: string, name: string, type: string) =>
  (await getJson<{ status?: { conditions?: Cond[] } }>(["get", kind, name, "-n", NS])).status?.conditions?.find(
    (c) => c.type === type,
  );
const conditionIs = (kind: string, name: string, type: string, status: string) =>
  eventually(`${kind}/${name} ${type}=${status}`, async () => {
    const c = await condition(kind, name, type);
    return c?.status === status ? c : undefined;
  });

function sh(cmd: string): void {
  const r = spawnSync("bash", ["-c", cmd], { cwd: pki, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}
/** An EC certificate for 127.0.0.1 signed by the test CA, with `cn` to tell renewals apart. */
function issue(name: string, cn: string): { crt: string; key: string } {
  sh(
    `openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${cn}" -keyout ${name}.key -out ${name}.csr 2>/dev/null`,
  );
  sh(
    `openssl x509 -req -in ${name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile <(printf "subjectAltName=IP:127.0.0.1") -out ${name}.crt 2>/dev/null`,
  );
  return { crt: readFileSync(join(pki, `${name}.crt`), "utf8"), key: readFileSync(join(pki, `${name}.key`), "utf8") };
}
const caPem = () => readFileSync(join(pki, "ca.crt"), "utf8");

const tlsSecret = (pair: { crt: string; key: string }) => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name: "web-tls", namespace: NS },
  type: "kubernetes.io/tls",
  stringData: { "tls.crt": pair.crt, "tls.key": pair.key },
});

/** The certificate's CN a fresh TLS connection to the secure network is given. */
function servedCn(): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port: ports.secure, ca: caPem() }, () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(Array.isArray(cn) ? cn.join(",") : (cn ?? ""));
    });
    s.on("error", reject);
  });
}

function httpsGet(path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port: ports.secure, path, headers, ca: caPem(), agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode!, text }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const token = () =>
  new SignJWT({ sub: "dr-who" })
    .setProtectedHeader({ alg: "ES256" })
    .setIssuer("https://idp.example")
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(signingKey.privateKey);

before(async () => {
  sh(
    `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=Harmony Test CA" -keyout ca.key -out ca.crt 2>/dev/null`,
  );
  const server1 = issue("server1", "gateway one");
  const up = issue("upstream", "upstream");
  // The upstream speaks TLS with a certificate only the CA from the Secret vouches for.
  upstream = createHttpsServer({ cert: up.crt, key: up.key }, (req, res) => {
    if (req.url?.startsWith("/slow")) {
      // Held until the test lets it go: the request in flight across a certificate renewal.
      release = () => res.end(JSON.stringify({ slow: "done" }));
      return;
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ path: req.url, user: req.headers["x-user"] ?? null }));
  });
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  const upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();

  cp = await startControlPlane();
  await cp.installCrds();
  await kubectl(["create", "namespace", NS]);
  const items = [
    tlsSecret(server1),
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "upstream-ca", namespace: NS },
      stringData: { "ca.crt": caPem() },
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "jwt-keys", namespace: NS },
      data: { "public.pem": signingKey.publicKey.export({ type: "spki", format: "pem" }).toString() },
    },
    {
      apiVersion: API,
      kind: "HarmonyGateway",
      metadata: { name: "edge", namespace: NS },
      spec: {
        // No replicas: the Deployment's (an HPA's) count is the one Ready waits for.
        networks: [
          {
            name: "secure",
            port: ports.secure,
            bindAddress: "127.0.0.1",
            tls: { certificateRefs: [{ name: "web-tls" }] },
          },
          { name: "plain", port: ports.plain, bindAddress: "127.0.0.1" },
          {
            name: "broken",
            port: ports.broken,
            bindAddress: "127.0.0.1",
            tls: { certificateRefs: [{ name: "absent" }] },
          },
        ],
        management: { port: ports.mgmt },
      },
    },
    ...["api", "jolt", "typo", "stranded"].map((name) => ({
      apiVersion: API,
      kind: "HarmonyEndpoint",
      metadata: { name, namespace: NS },
      spec: { service: "http", pathPrefix: `/${name}` },
    })),
    {
      apiVersion: API,
      kind: "HarmonyPipeline",
      metadata: { name: "api", namespace: NS },
      spec: {
        gatewayRef: { name: "edge" },
        endpoints: [{ name: "api" }],
        middleware: [
          {
            name: "auth",
            type: "jwt_auth",
            options: { issuer: "https://idp.example", claims_to_headers: { sub: "x-user" } },
            fileOptions: [{ option: "public_key_path", configMapKeyRef: { name: "jwt-keys", key: "public.pem" } }],
          },
        ],
        backends: [
          {
            service: "http",
            url: upstreamUrl,
            fileOptions: [{ option: "tls.ca_path", secretKeyRef: { name: "upstream-ca", key: "ca.crt" } }],
          },
        ],
      },
    },
    {
      apiVersion: API,
      kind: "HarmonyPipeline",
      metadata: { name: "jolt", namespace: NS },
      spec: {
        gatewayRef: { name: "edge" },
        endpoints: [{ name: "jolt" }],
        middleware: [
          {
            name: "reshape",
            type: "transform",
            options: { apply: "right" },
            fileOptions: [{ option: "spec_path", inline: [{ operation: "shift", spec: { path: "seen.at" } }] }],
          },
        ],
        backends: [
          {
            service: "http",
            url: upstreamUrl,
            fileOptions: [{ option: "tls.ca_path", secretKeyRef: { name: "upstream-ca", key: "ca.crt" } }],
          },
        ],
      },
    },
    {
      apiVersion: API,
      kind: "HarmonyPipeline",
      metadata: { name: "typo", namespace: NS },
      spec: {
        gatewayRef: { name: "edge" },
        endpoints: [{ name: "typo" }],
        middleware: [
          {
            name: "auth",
            type: "jwt_auth",
            options: { audiance: "api" },
            fileOptions: [{ option: "public_key_path", configMapKeyRef: { name: "jwt-keys", key: "public.pem" } }],
          },
        ],
        backends: [{ service: "http", url: upstreamUrl }],
      },
    },
    {
      apiVersion: API,
      kind: "HarmonyPipeline",
      metadata: { name: "stranded", namespace: NS },
      spec: {
        gatewayRef: { name: "edge" },
        networks: ["broken"],
        endpoints: [{ name: "stranded" }],
        backends: [{ service: "http", url: upstreamUrl }],
      },
    },
  ];
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  operator = spawn(
    process.execPath,
    [
      join(ROOT, "operator/dist/main.js"),
      "--kubeconfig",
      cp.kubeconfig,
      "--leader-elect",
      "false",
      "--health-port",
      "0",
      "--secret-recheck-interval",
      "1s",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout!.setEncoding("utf8").on("data", (c: string) => (log += c));
  operator.stderr!.setEncoding("utf8").on("data", (c: string) => (log += c));
  await conditionIs("harmonypipeline", "api", "Programmed", "True");
  await conditionIs("harmonypipeline", "jolt", "Programmed", "True");

  // The pod's two volumes, side by side as the Deployment mounts them.
  const mount = tempDir("harmony-mount-");
  const kc = (args: string[]) => spawn("kubectl", ["--kubeconfig", cp.kubeconfig, ...args], { env: cp.env });
  syncers.push(startSyncer(kc, NS, "edge-harmony-config", join(mount, "config")));
  syncers.push(startSyncer(kc, NS, "edge-harmony-secrets", join(mount, "secrets"), "secret"));
  await eventually("both volumes synced", () => Promise.resolve(syncers.every((s) => s.swaps() > 0) || undefined));
  dp = await startDataplane(join(mount, "config", "config.toml"), { HARMONY_POLL_MS: "200" });
  // A Pod object tells the operator where the data plane is (no kubelet runs here).
  await addPod("edge-pod-1");
});

async function addPod(name: string): Promise<void> {
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: NS,
        labels: { "harmony.runbeam.io/gateway": "edge", "app.kubernetes.io/name": "harmony-dataplane" },
      },
      spec: { containers: [{ name: "dataplane", image: "harmony" }] },
    }),
  );
  await kubectl([
    "patch",
    "pod",
    name,
    "-n",
    NS,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status: POD_READY }),
  ]);
}

after(async () => {
  release?.();
  await dp?.stop();
  for (const s of syncers) s.stop();
  if (operator && operator.exitCode === null && operator.signalCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  upstream?.close();
  await cp?.stop();
});

test("HTTPS from a tls Secret, a jwt_auth key from a ConfigMap, an upstream CA from a Secret", async () => {
  assert.equal(await servedCn(), "gateway one");
  const ok = await httpsGet("/api/records", { authorization: `Bearer ${await token()}` });
  // The upstream is HTTPS with a certificate only the CA from the Secret vouches for.
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(JSON.parse(ok.text), { path: "/records", user: "dr-who" });
  const anonymous = await httpsGet("/api/records");
  assert.equal(anonymous.status, 401, anonymous.text);
  // Secret material only in the Secret: the ConfigMap has the public key, never the CA's Secret or the TLS key.
  const cm = await getJson<{ data: Record<string, string> }>(["get", "configmap", "edge-harmony-config", "-n", NS]);
  const text = Object.values(cm.data).join("\n");
  assert.match(text, /BEGIN PUBLIC KEY/);
  assert.doesNotMatch(text, /PRIVATE KEY|BEGIN CERTIFICATE/);
  assert.match(cm.data[`pipeline.${NS}.api.toml`]!, /ca_path = "\.\.\/secrets\//);
});

test("a JOLT spec inline in the CR shapes the response", async () => {
  const r = await httpsGet("/jolt/x");
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(JSON.parse(r.text), { seen: { at: "/x" } });
});

test("a network whose Secret is missing is reported and left out; the others serve", async () => {
  const c = await conditionIs("harmonygateway", "edge", "ResolvedRefs", "False");
  assert.equal(c.reason, "InvalidCertificateRef");
  assert.match(
    c.message,
    /network "broken" not served: spec\.networks\[2\]\.tls\.certificateRefs\[0\]: Secret files\/absent not found/,
  );
  await conditionIs("harmonygateway", "edge", "Programmed", "True");
  const ready = await eventually("Ready to name the network", async () => {
    const r = await condition("harmonygateway", "edge", "Ready");
    return r?.message.includes("not served") ? r : undefined;
  });
  assert.match(ready.message, /; not served: network "broken" \(see ResolvedRefs\)$/);
  const stranded = await conditionIs("harmonypipeline", "stranded", "ResolvedRefs", "False");
  assert.equal(stranded.reason, "NetworkNotReady");
  // Never served without the TLS it asks for.
  const refused = await new Promise<string>((resolve) => {
    const s = tlsConnect({ host: "127.0.0.1", port: ports.broken, rejectUnauthorized: false }, () => resolve("open"));
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
  });
  assert.equal(refused, "ECONNREFUSED");
  const plain = await fetch(`http://127.0.0.1:${ports.plain}/jolt/y`);
  assert.equal(plain.status, 200);
});

test("a misspelt option that got past admission refuses the pipeline with its spec path", async () => {
  const c = await conditionIs("harmonypipeline", "typo", "Accepted", "False");
  assert.equal(c.reason, "InvalidOptions");
  assert.match(c.message, /spec\.middleware\[0\]\.options\.audiance: unknown option; did you mean "audience"\?/);
  const cm = await getJson<{ data: Record<string, string> }>(["get", "configmap", "edge-harmony-config", "-n", NS]);
  assert.equal(cm.data[`pipeline.${NS}.typo.toml`], undefined, "the pipeline is not in the config");
  const r = await httpsGet("/typo/x");
  assert.equal(r.status, 404, "not served without its audience check");
});

test("the CRD refuses secret material from a ConfigMap, and a file option with two sources", async () => {
  const attempt = (fileOptions: unknown[]) =>
    cp.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: API,
        kind: "HarmonyPipeline",
        metadata: { name: "refused", namespace: NS },
        spec: {
          gatewayRef: { name: "edge" },
          endpoints: [{ name: "api" }],
          backends: [{ service: "http", url: "https://127.0.0.1:1", fileOptions }],
        },
      }),
    );
  const key = await attempt([{ option: "tls.key_path", configMapKeyRef: { name: "jwt-keys", key: "public.pem" } }]);
  assert.notEqual(key.code, 0);
  assert.match(
    key.stderr,
    /a private key \(key_path\) or a secret option's file \(\*_file\) must come from a secretKeyRef/,
  );
  const both = await attempt([
    { option: "tls.ca_path", configMapKeyRef: { name: "a", key: "b" }, secretKeyRef: { name: "c", key: "d" } },
  ]);
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /set exactly one of configMapKeyRef, secretKeyRef and inline/);
});

test("a renewed tls Secret is served without a restart, and a request in flight completes", async () => {
  const pid = dp!.proc.pid;
  const inflight = httpsGet("/api/slow", { authorization: `Bearer ${await token()}` });
  await eventually("the request to reach the upstream", () => Promise.resolve(release !== undefined || undefined));
  const server2 = issue("server2", "gateway two");
  await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], JSON.stringify(tlsSecret(server2)));
  await eventually("the renewed certificate served", async () =>
    (await servedCn()) === "gateway two" ? true : undefined,
  );
  release!();
  const done = await inflight;
  assert.equal(done.status, 200);
  assert.deepEqual(JSON.parse(done.text), { slow: "done" });
  assert.equal(dp!.proc.pid, pid);
  assert.equal(dp!.proc.exitCode, null, "the data plane did not restart");
  const ok = await httpsGet("/api/after", { authorization: `Bearer ${await token()}` });
  assert.equal(ok.status, 200);
});

test("Ready waits for the Deployment's replicas when an HPA owns them", async () => {
  const ready = await conditionIs("harmonygateway", "edge", "Ready", "True");
  assert.match(ready.message, /^1\/1 pods serving/);
  // What an HPA does: scale the Deployment, not the gateway.
  await kubectl(["scale", "deployment", "edge-harmony", "-n", NS, "--replicas=2"]);
  const waiting = await conditionIs("harmonygateway", "edge", "Ready", "False");
  assert.match(waiting.message, /^1\/2 pods serving/);
  await addPod("edge-pod-2");
  const both = await conditionIs("harmonygateway", "edge", "Ready", "True");
  assert.match(both.message, /^2\/2 pods serving/);
});
