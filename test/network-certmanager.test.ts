/**
 * HarmonyNetwork with spec.ca.mode CertManager, on real parts: a real control plane, the real
 * cert-manager controller (test/certmanager/build.sh builds it from the Go module proxy, cached)
 * with a CA ClusterIssuer whose CA Secret the test creates, the operator as a host process, and two
 * gateways' data planes running on exactly the files their pods would mount (test/network-pod.ts).
 *
 * The operator makes one Certificate per member gateway; cert-manager issues it; the operator
 * builds the gateways' network files from cert-manager's Secrets: gw-a calls org-b's endpoint by
 * its harmony:// URI over mutual TLS on cert-manager leaves. A forced renewal (what `cmctl renew`
 * does: the Certificate's Issuing condition) gives gw-b a new serial while a request loop sees no
 * failure. A network whose Issuer does not exist reports CertificateNotReady with cert-manager's
 * message, and the other network keeps serving.
 *
 * Skipped, saying why, only when build.sh cannot provide cert-manager (no Go, no module proxy).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import { eventually as poll, freePort, http, startUpstream, stopAll } from "../dataplane/test/helpers.js";
import type { Dataplane } from "../dataplane/test/helpers.js";
import { cr, startCluster, type Cluster } from "./network-env.js";
import { runGatewayPod } from "./network-pod.js";
import { createCa, type Ca } from "./network-pki.js";
import { provideCertManager, startCertManager, type CertManager } from "./certmanager/certmanager.js";

const DOMAIN = "hospitals.example";
const CM_NS = "cert-manager";
const provided = await provideCertManager();
const skip = "error" in provided ? `cert-manager could not be provided: ${provided.error}` : false;
// node:test prints the reason with each skipped test ("# SKIP cert-manager could not be provided: ...").
if (skip) process.stderr.write(`network-certmanager.test.ts: ${skip}\n`);

let C: Cluster;
let cm: CertManager;
let issuerCa: Ca;
let gwA: Dataplane;
let gwB: Dataplane;
const stops: (() => unknown)[] = [];
const ports = { a: 0, b: 0, app: 0, mgmtA: 0, mgmtB: 0 };

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 90_000) =>
  poll(what, fn, {
    timeoutMs,
    context: () =>
      `operator log:\n${C?.log().slice(-3000)}\ncert-manager log:\n${cm?.log().slice(-3000)}\n` +
      `gw-a:\n${gwA?.stderr().slice(-1000)}${JSON.stringify(gwA?.logs.slice(-10))}\n` +
      `gw-b:\n${gwB?.stderr().slice(-1000)}${JSON.stringify(gwB?.logs.slice(-10))}`,
  });

const gateway = (ns: string, name: string, networks: object[], mgmt: number) =>
  cr(
    "HarmonyGateway",
    ns,
    name,
    { networks, management: { port: mgmt } },
    { annotations: { "harmony.runbeam.io/network-address": "127.0.0.1" } },
  );
const harmony = (port: number) => ({ name: "harmony", port, bindAddress: "127.0.0.1" });
const certManagerCa = (name: string, kind: string) => ({
  mode: "CertManager",
  certManager: { issuerRef: { name, kind } },
});

type Condition = { type: string; status: string; reason?: string; message?: string };
const networkStatus = async (name: string) =>
  (await C.get<{ status?: { conditions?: Condition[] } }>(`/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/${name}`))
    ?.status;
const ready = async (name: string) => (await networkStatus(name))?.conditions?.find((c) => c.type === "Ready");
const certificate = (ns: string, name: string) =>
  C.get<{
    metadata: { ownerReferences?: { kind: string; name: string }[] };
    spec: Record<string, unknown> & { uris: string[]; privateKey: { rotationPolicy: string } };
    status?: { conditions?: Condition[]; revision?: number };
  }>(`/apis/cert-manager.io/v1/namespaces/${ns}/certificates/${name}`);

/** The certificate gw-b's network listener presents to a client holding gw-a's cert-manager leaf. */
async function servedByB(): Promise<X509Certificate> {
  const [cert, key] = await Promise.all([
    C.secretKey("org-a", "gw-a-harmony-net", "hospitals.tls.crt"),
    C.secretKey("org-a", "gw-a-harmony-net", "hospitals.tls.key"),
  ]);
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: ports.b, cert, key, rejectUnauthorized: false }, () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(new X509Certificate(raw));
    });
    s.on("error", reject);
  });
}

const viaA = (path: string) => http(`http://127.0.0.1:${ports.app}/b/echo${path}`);

before(async () => {
  if (skip) return;
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  const upstream = await startUpstream((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ upstream: "org-b", path: req.url }));
  });
  stops.push(() => upstream.close());
  C = await startCluster("cluster-cm");
  stops.push(() => C.stop());
  for (const ns of ["org-a", "org-b", "org-c", CM_NS]) await C.kubectl(["create", "namespace", ns]);
  cm = await startCertManager(C, (provided as { dir: string }).dir, CM_NS);
  stops.push(() => cm.stop());
  // The issuer's CA: a Secret the test creates, as an admin would for cert-manager's CA issuer.
  issuerCa = createCa("hospitals cert-manager CA");
  await C.apply(
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "hospitals-ca", namespace: CM_NS },
      type: "kubernetes.io/tls",
      stringData: { "tls.crt": issuerCa.certPem, "tls.key": issuerCa.keyPem },
    },
    {
      apiVersion: "cert-manager.io/v1",
      kind: "ClusterIssuer",
      metadata: { name: "hospitals-ca" },
      spec: { ca: { secretName: "hospitals-ca" } },
    },
  );
  await C.apply(
    cr("HarmonyNetwork", undefined, "hospitals", {
      domain: DOMAIN,
      members: { orgs: ["org-a", "org-b"] },
      syncIntervalSeconds: 1,
      ca: certManagerCa("hospitals-ca", "ClusterIssuer"),
    }),
    gateway(
      "org-a",
      "gw-a",
      [harmony(ports.a), { name: "apps", port: ports.app, bindAddress: "127.0.0.1" }],
      ports.mgmtA,
    ),
    cr("HarmonyEndpoint", "org-a", "b-echo", { service: "http", pathPrefix: "/b/echo" }),
    cr("HarmonyPipeline", "org-a", "to-b", {
      gatewayRef: { name: "gw-a" },
      networks: ["apps"],
      endpoints: [{ name: "b-echo" }],
      backends: [{ service: "http", target: `harmony://${DOMAIN}/org-b/echo` }],
    }),
    gateway("org-b", "gw-b", [harmony(ports.b)], ports.mgmtB),
    cr("HarmonyEndpoint", "org-b", "echo", { service: "http", pathPrefix: "/org-b/echo" }),
    cr("HarmonyPipeline", "org-b", "echo-pl", {
      gatewayRef: { name: "gw-b" },
      networks: ["harmony"],
      endpoints: [{ name: "echo" }],
      backends: [{ service: "http", url: upstream.url }],
    }),
  );
  // Settled, not all: a gateway still starting when the other fails would register its stop after
  // after() ran and keep this file's process (and CI) waiting on it forever.
  const started = await Promise.allSettled([
    runGatewayPod(C, "org-a", "gw-a", { stops, eventually }),
    runGatewayPod(C, "org-b", "gw-b", { stops, eventually }),
  ]);
  for (const r of started) if (r.status === "rejected") throw r.reason;
  [gwA, gwB] = started.map((r) => (r as PromiseFulfilledResult<Dataplane>).value) as [Dataplane, Dataplane];
});

after(() => stopAll(stops));

test(
  "one Certificate per member gateway: the SPIFFE URI SAN, key rotation Always, owned by the gateway",
  { skip },
  async () => {
    for (const [org, gw] of [
      ["org-a", "gw-a"],
      ["org-b", "gw-b"],
    ] as const) {
      const c = await eventually(`${gw}'s Certificate`, () => certificate(org, `${gw}-harmony-hospitals`));
      assert.deepEqual(c.spec.uris, [`spiffe://${DOMAIN}/org/${org}/gateway/${gw}`]);
      assert.equal(c.spec.privateKey.rotationPolicy, "Always");
      assert.equal(c.spec.secretName, `${gw}-harmony-hospitals-tls`);
      assert.deepEqual(c.spec.issuerRef, { name: "hospitals-ca", kind: "ClusterIssuer", group: "cert-manager.io" });
      assert.deepEqual(
        c.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`),
        [`HarmonyGateway/${gw}`],
      );
    }
    const r = await eventually("hospitals Ready", async () => {
      const c = await ready("hospitals");
      return c?.status === "True" && c;
    });
    assert.equal(r.reason, "Ready");
  },
);

test("gw-a calls org-b's endpoint by URI over mutual TLS on cert-manager leaves", { skip }, async () => {
  const r = await eventually("gw-a reaches gw-b's upstream", async () => {
    const x = await viaA("/hello");
    return x.status === 200 && x;
  });
  assert.equal((r.json() as { upstream: string }).upstream, "org-b");
  // What gw-b serves: issued by the cert-manager CA, its only identity the URI SAN naming its org.
  const leaf = await servedByB();
  const ca = new X509Certificate(issuerCa.certPem);
  assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), `${leaf.issuer} is not the cert-manager CA`);
  assert.equal(leaf.subjectAltName, `URI:spiffe://${DOMAIN}/org/org-b/gateway/gw-b`);
  // The local CA of the trust bundle is the issuer's, still scoped to the network's orgs.
  const bundle = (await C.secretKey("org-a", "gw-a-harmony-net", "hospitals.ca.crt"))!;
  const [head, pem] = bundle.split("\n-----BEGIN CERTIFICATE-----");
  assert.equal(head, "Harmony-Orgs: org-a, org-b");
  assert.equal(new X509Certificate(`-----BEGIN CERTIFICATE-----${pem}`).fingerprint256, ca.fingerprint256);
});

test(
  "a forced renewal reaches gw-b's listener (new serial) while a request loop sees no failure",
  { skip },
  async (t) => {
    const before = await servedByB();
    let running = true;
    let ok = 0;
    const failures: string[] = [];
    const deadline = Date.now() + 240_000;
    const load = (async () => {
      for (let i = 0; running && i < 100_000 && Date.now() < deadline; i++) {
        try {
          const r = await viaA(`/n/${i}`);
          if (r.status === 200) ok++;
          else failures.push(`${r.status} ${r.text.slice(0, 300)}`);
        } catch (e) {
          failures.push(String(e));
        }
      }
    })();
    try {
      await eventually("requests flowing", () => Promise.resolve(ok > 5));
      // `cmctl renew`: an Issuing condition on the Certificate's status.
      const name = "gw-b-harmony-hospitals";
      const c = (await certificate("org-b", name))!;
      const conditions = [
        ...(c.status?.conditions ?? []).filter((x) => x.type !== "Issuing"),
        {
          type: "Issuing",
          status: "True",
          reason: "ManuallyTriggered",
          message: "Certificate re-issuance manually triggered",
          lastTransitionTime: new Date().toISOString(),
        },
      ];
      const t0 = Date.now();
      await C.kubectl([
        "patch",
        "certificate",
        name,
        "-n",
        "org-b",
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status: { conditions } }),
      ]);
      const renewed = await eventually("gw-b to serve a new serial", async () => {
        const now = await servedByB();
        return now.serialNumber !== before.serialNumber && now;
      });
      const servedMs = Date.now() - t0;
      assert.equal(renewed.subjectAltName, before.subjectAltName);
      assert.notEqual(
        renewed.publicKey.export({ type: "spki", format: "pem" }),
        before.publicKey.export({ type: "spki", format: "pem" }),
        "rotationPolicy Always: a new key",
      );
      const after = ok;
      await eventually("requests flowing on the new leaf", () => Promise.resolve(ok > after + 5));
      t.diagnostic(
        `renewal triggered → new serial served by gw-b: ${(servedMs / 1000).toFixed(1)} s; ${ok} requests, ${failures.length} failed`,
      );
    } finally {
      running = false;
      await load;
    }
    assert.deepEqual(failures, []);
  },
);

test(
  "a missing Issuer: CertificateNotReady with cert-manager's message; the other network keeps serving",
  { skip },
  async (t) => {
    await C.apply(
      cr("HarmonyNetwork", undefined, "clinics", {
        domain: "clinics.example",
        members: { orgs: ["org-c"] },
        syncIntervalSeconds: 1,
        ca: certManagerCa("no-such-issuer", "Issuer"),
      }),
      gateway("org-c", "gw-c", [harmony(await freePort())], await freePort()),
    );
    const cond = await eventually("clinics CertificateNotReady with cert-manager's message", async () => {
      const c = await ready("clinics");
      const cert = await certificate("org-c", "gw-c-harmony-clinics");
      const cmReady = cert?.status?.conditions?.find((x) => x.type === "Ready");
      const said = Boolean(cmReady?.message && c?.message?.includes(cmReady.message));
      // cert-manager says it in two steps: the Certificate first, its CertificateRequest after.
      const request = /CertificateRequest gw-c-harmony-clinics-\d+: /.test(c?.message ?? "");
      return c?.reason === "CertificateNotReady" && said && request && c;
    });
    t.diagnostic(`clinics: ${cond.message}`);
    assert.equal(cond.status, "False");
    // cert-manager's answer for the missing issuer, from the CertificateRequest.
    assert.match(
      cond.message ?? "",
      /CertificateRequest gw-c-harmony-clinics-\d+: Pending: .*no-such-issuer.* not found/,
    );
    assert.match(
      cond.message ?? "",
      /^1 of 1 gateway certificate\(s\) not ready: Certificate org-c\/gw-c-harmony-clinics: /,
    );
    // No leaf, no listener: gw-c's network listener is left out (never served without its mutual
    // TLS), as a listener whose TLS Secret is missing, and the gateway says why.
    assert.equal(await C.secretKey("org-c", "gw-c-harmony-net", "clinics.tls.crt"), undefined);
    const refs = await eventually("gw-c ResolvedRefs=False CertificateNotReady", async () => {
      const g = await C.get<{ status?: { conditions?: Condition[] } }>(
        "/apis/harmony.runbeam.io/v1alpha1/namespaces/org-c/harmonygateways/gw-c",
      );
      const c = g?.status?.conditions?.find((x) => x.type === "ResolvedRefs");
      return c?.reason === "CertificateNotReady" && c;
    });
    assert.match(refs.message!, /network "harmony" not served: HarmonyNetwork clinics: cert-manager has not issued/);
    const toml = (
      await C.get<{ data: Record<string, string> }>("/api/v1/namespaces/org-c/configmaps/gw-c-harmony-config")
    )?.data["config.toml"];
    assert.ok(toml && !toml.includes("[network.harmony"), `gw-c's config serves the harmony listener:\n${toml}`);
    const h = await ready("hospitals");
    assert.equal(h?.status, "True");
    const r = await viaA("/still");
    assert.equal(r.status, 200, r.text);
  },
);

test(
  "leaving mode CertManager deletes the network's Certificates, and the operator's CA serves the gateway",
  { skip },
  async () => {
    await C.apply(
      cr("HarmonyNetwork", undefined, "clinics", {
        domain: "clinics.example",
        members: { orgs: ["org-c"] },
        syncIntervalSeconds: 1,
        ca: { mode: "Operator" },
      }),
    );
    await eventually("gw-c's Certificate deleted", async () => {
      const list = await C.get<{ items: unknown[] }>("/apis/cert-manager.io/v1/namespaces/org-c/certificates");
      return list?.items.length === 0;
    });
    const leaf = await eventually("gw-c's leaf from the operator's CA", () =>
      C.secretKey("org-c", "gw-c-harmony-net", "clinics.tls.crt"),
    );
    assert.equal(new X509Certificate(leaf).subjectAltName, "URI:spiffe://clinics.example/org/org-c/gateway/gw-c");
    const c = await eventually("clinics Ready", async () => {
      const r = await ready("clinics");
      return r?.status === "True" && r;
    });
    assert.equal(c.reason, "Ready");
    // hospitals' Certificates are untouched.
    assert.ok(await certificate("org-b", "gw-b-harmony-hospitals"));
  },
);
