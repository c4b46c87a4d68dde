/**
 * bench/network-directory: how long N endpoints take to reach the rendered directory, locally and
 * across two clusters. Two real control planes (test/controlplane) and an operator per cluster, as
 * in test/network.test.ts. Cluster A: network "hospitals", org-b serves N endpoints (10 pipelines)
 * on one gateway and exports them all. Cluster B: network "clinics", peered with A through a token;
 * A's export is fetched from a stand-in for A's gateway (an HTTPS server that serves A's current
 * export.jws from A's apiserver, as the data plane would from its mounted file).
 *
 * Reports: N endpoints applied → all in A's directory; → all in B's directory; then one more
 * endpoint → in A's / B's directory (the incremental path at N); sizes of directory and export.
 *
 *   node --import tsx bench/network-directory/run.ts            # N=1000
 *   N=200 node --import tsx bench/network-directory/run.ts
 */
import { createServer } from "node:https";
import { once } from "node:events";
import { OPERATOR_NS, cr, memberGateway, startCluster, type Cluster } from "../../test/network-env.js";

const N = Number(process.env.N ?? 1000);
const PER_PIPELINE = 100;
const SYNC_S = Number(process.env.SYNC_S ?? 1);
const out = (s: string) => process.stdout.write(s + "\n");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 900_000): Promise<number> {
  const t0 = Date.now();
  while (!(await fn().catch(() => false))) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
  return Date.now();
}
const entries = async (c: Cluster, ns: string, gw: string, net: string) => {
  const t = await c.secretKey(ns, `${gw}-harmony-net`, `${net}.directory.json`);
  return t ? (JSON.parse(t) as { entries: { uri: string }[] }).entries : [];
};
const endpointsFor = (from: number, to: number) => {
  const objs: object[] = [];
  for (let p = from; p < to; p += PER_PIPELINE) {
    const names = Array.from({ length: Math.min(PER_PIPELINE, to - p) }, (_, i) => `ep-${p + i}`);
    for (const n of names) objs.push(cr("HarmonyEndpoint", "org-b", n, { service: "fhir", pathPrefix: `/org-b/${n}` }));
    objs.push(
      cr("HarmonyPipeline", "org-b", `pl-${p}`, {
        gatewayRef: { name: "gw-b" },
        endpoints: names.map((name) => ({ name })),
        backends: [{ service: "fhir", url: "http://127.0.0.1:1" }],
      }),
    );
  }
  return objs;
};

const [A, B] = await Promise.all([startCluster("cluster-a"), startCluster("cluster-b")]);
try {
  await A.kubectl(["create", "namespace", "org-b"]);
  await B.kubectl(["create", "namespace", "org-c"]);
  await A.apply(
    cr("HarmonyNetwork", undefined, "hospitals", {
      domain: "hospitals.example",
      members: { orgs: ["org-b"] },
      export: { endpoints: [{ org: "org-b" }] },
    }),
    memberGateway("org-b", "gw-b", 9443),
  );
  const fp = await (async () => {
    for (;;) {
      const n = await A.get<{ status?: { caFingerprint?: string } }>(
        "/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/hospitals",
      );
      if (n?.status?.caFingerprint) return n.status.caFingerprint;
      await sleep(100);
    }
  })();
  await until(
    "gw-b network Secret",
    async () => (await A.secretKey("org-b", "gw-b-harmony-net", "hospitals.tls.crt")) !== undefined,
  );
  const cert = (await A.secretKey("org-b", "gw-b-harmony-net", "hospitals.tls.crt"))!;
  const key = (await A.secretKey("org-b", "gw-b-harmony-net", "hospitals.tls.key"))!;
  const standIn = createServer({ cert, key }, (_req, res) => {
    void A.secretKey("org-b", "gw-b-harmony-net", "hospitals.export.jws").then((body) =>
      body ? res.writeHead(200).end(body) : res.writeHead(404).end(),
    );
  });
  standIn.listen(0, "127.0.0.1");
  await once(standIn, "listening");
  const url = `https://127.0.0.1:${(standIn.address() as { port: number }).port}/.well-known/harmony/hospitals/export.jws`;
  await B.apply(
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "peer-a", namespace: OPERATOR_NS },
      stringData: { url, fingerprint: fp },
    },
    cr("HarmonyNetwork", undefined, "clinics", {
      domain: "clinics.example",
      members: { orgs: ["org-c"] },
      syncIntervalSeconds: SYNC_S,
      peers: [{ name: "cluster-a", tokenSecretRef: { name: "peer-a" } }],
    }),
    memberGateway("org-c", "gw-c", 8443),
  );
  await until(
    "gw-c network Secret",
    async () => (await B.secretKey("org-c", "gw-c-harmony-net", "clinics.tls.crt")) !== undefined,
  );

  const t0 = Date.now();
  const objs = endpointsFor(0, N);
  for (let i = 0; i < objs.length; i += 202) await A.apply(...objs.slice(i, i + 202));
  const applied = Date.now();
  // The same gateway reconcile writes config and directory: when its pipelines are all in the
  // ConfigMap is the operator's ordinary render path, the baseline the directory adds to.
  const pipelines = Math.ceil(N / PER_PIPELINE);
  const tCfg = await until("pipelines in A's ConfigMap", async () => {
    const cm = await A.get<{ data?: Record<string, string> }>(
      "/api/v1/namespaces/org-b/configmaps/gw-b-harmony-config",
    );
    return Object.keys(cm?.data ?? {}).filter((k) => k.startsWith("pipeline.")).length === pipelines;
  });
  const tA = await until(
    `${N} entries in A`,
    async () => (await entries(A, "org-b", "gw-b", "hospitals")).length === N,
  );
  const tB = await until(`${N} entries in B`, async () => (await entries(B, "org-c", "gw-c", "clinics")).length === N);

  const t1 = Date.now();
  await A.apply(...endpointsFor(N, N + 1));
  const uri = `harmony://hospitals.example/org-b/ep-${N}`;
  const t1A = await until("one more in A", async () =>
    (await entries(A, "org-b", "gw-b", "hospitals")).some((e) => e.uri === uri),
  );
  const t1B = await until("one more in B", async () =>
    (await entries(B, "org-c", "gw-c", "clinics")).some((e) => e.uri === uri),
  );

  const dirBytes = Buffer.byteLength((await B.secretKey("org-c", "gw-c-harmony-net", "clinics.directory.json")) ?? "");
  const jwsBytes = Buffer.byteLength((await A.secretKey("org-b", "gw-b-harmony-net", "hospitals.export.jws")) ?? "");
  out(`network-directory: N=${N} endpoints (${Math.ceil(N / PER_PIPELINE)} pipelines), peer sync interval ${SYNC_S}s`);
  out(`  apply ${N} endpoints + pipelines to A's apiserver:  ${((applied - t0) / 1000).toFixed(1)} s`);
  out(
    `  start of apply → all pipelines in A's ConfigMap:  ${((tCfg - t0) / 1000).toFixed(1)} s (the ordinary render path)`,
  );
  out(`  start of apply → all ${N} in A's directory:       ${((tA - t0) / 1000).toFixed(1)} s`);
  out(
    `  start of apply → all ${N} in B's directory:       ${((tB - t0) / 1000).toFixed(1)} s (A→B ${((tB - tA) / 1000).toFixed(1)} s)`,
  );
  out(`  one more endpoint at N → A's directory:           ${((t1A - t1) / 1000).toFixed(2)} s`);
  out(`  one more endpoint at N → B's directory:           ${((t1B - t1) / 1000).toFixed(2)} s`);
  out(`  B's directory.json ${(dirBytes / 1024).toFixed(0)} KiB; A's export.jws ${(jwsBytes / 1024).toFixed(0)} KiB`);
  // Where cluster A's operator spent its time: reconciles and seconds by kind, writes by kind.
  const metrics = await (await fetch(`http://127.0.0.1:${A.healthPort}/metrics`)).text();
  const series = (name: string) =>
    [...metrics.matchAll(new RegExp(`^${name}\\{([^}]*)\\} ([0-9.e+]+)$`, "gm"))].map(
      (m) => `${m[1]}=${Number(m[2]).toFixed(1)}`,
    );
  out(`  A's operator: reconciles ${series("harmony_operator_reconcile_total").join(" ")}`);
  out(`                seconds ${series("harmony_operator_reconcile_time_seconds_sum").join(" ")}`);
  out(`                writes ${series("harmony_operator_writes_total").join(" ")}`);
  standIn.close();
} finally {
  await Promise.all([A.stop(), B.stop()]);
}
