/**
 * HarmonyNetwork with an operator scoped by --watch-namespaces (issue 17), on a real control plane.
 * The operator runs with a ServiceAccount token bound to exactly the Helm chart's scoped RBAC
 * (`helm template` with operator.watchNamespaces={org-a,org-b}): a Role per watched namespace,
 * the ClusterRole on harmonynetworks only, and a Role in the release namespace for the network CA.
 * No cluster-wide namespace list: `kubectl auth can-i` says so with the same token.
 *
 * A network over org-a, org-b and org-x (not watched) renders the directory and the workload
 * certificates for org-a and org-b, reports org-x as skipped in its status, and a
 * namespaceSelector matches among the watched namespaces, read one GET each.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { ROOT, eventually as poll, run, tempDir } from "../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, memberGateway, pems, served, startCluster, type Cluster } from "./network-env.js";
import type { ControlPlane } from "./controlplane/controlplane.js";
import { writeKubeconfig } from "./kubeconfig.js";

const RELEASE = "harmony";
let A: Cluster;
let saKubeconfig = "";

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${A.log().slice(-4000)}` });

interface Skipped {
  kind: string;
  name: string;
  reason: string;
  message: string;
}
interface NetStatus {
  members?: string[];
  endpoints?: number;
  gateways?: number;
  operator?: string;
  skipped?: Skipped[];
  conditions?: { type: string; status: string; reason: string; message: string }[];
}
const network = async (name: string) =>
  (await A.get<{ status?: NetStatus }>(`/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/${name}`))?.status;
const directory = async (ns: string, gw: string, net: string) => {
  const text = await A.secretKey(ns, `${gw}-harmony-net`, `${net}.directory.json`);
  return text === undefined ? undefined : (JSON.parse(text) as { entries: { uri: string }[]; groups: unknown[] });
};

/** The chart's RBAC for a scoped install, applied as Helm would, and a token of its ServiceAccount. */
async function chartRbac(cp: ControlPlane, kubectl: (args: string[], input?: string) => Promise<string>) {
  for (const ns of ["org-a", "org-b", "org-x"]) await kubectl(["create", "namespace", ns]);
  const r = await run(
    join(cp.binDir, "helm"),
    [
      "template",
      RELEASE,
      join(ROOT, "charts/harmony"),
      "--namespace",
      OPERATOR_NS,
      "--set",
      "operator.watchNamespaces={org-a,org-b}",
      "--set",
      "operator.leaderElection.enabled=false",
      "--show-only",
      "templates/serviceaccount.yaml",
      "--show-only",
      "templates/rbac.yaml",
    ],
    { env: cp.env },
  );
  assert.equal(r.code, 0, r.stderr);
  const items = parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as { kind: string } | null)
    .filter((o) => o !== null);
  assert.deepEqual(items.map((o) => o.kind).sort(), [
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "Role",
    "Role",
    "RoleBinding",
    "RoleBinding",
    "RoleBinding",
    "ServiceAccount",
  ]);
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  const token = (await kubectl(["create", "token", RELEASE, "-n", OPERATOR_NS, "--duration=1h"])).trim();
  saKubeconfig = writeKubeconfig(join(tempDir("harmony-scoped-"), "kubeconfig"), {
    server: cp.server,
    caPem: cp.caPem,
    token,
    namespace: OPERATOR_NS,
  });
  return saKubeconfig;
}

/** `kubectl auth can-i` with the operator's own token. */
async function can(...args: string[]): Promise<boolean> {
  const r = await run("kubectl", ["--kubeconfig", saKubeconfig, "auth", "can-i", ...args], { env: A.cp.env });
  if (r.code !== 0 && !/^no/m.test(r.stdout)) throw new Error(`can-i ${args.join(" ")}: ${r.stderr}`);
  return r.code === 0;
}

before(async () => {
  A = await startCluster(
    "cluster-a",
    // Namespace labels are read again at this pace (a scoped operator cannot watch namespaces).
    ["--watch-namespaces", "org-a,org-b", "--relist-interval", "2s"],
    chartRbac,
  );
  await A.apply(
    cr("HarmonyNetwork", undefined, "hospitals", {
      domain: "hospitals.example",
      members: { orgs: ["org-a", "org-b", "org-x"] },
    }),
    memberGateway("org-a", "gw-a", 8443),
    memberGateway("org-b", "gw-b", 9443),
    memberGateway("org-x", "gw-x", 7443),
    ...served("org-a", "gw-a", "app", { service: "http", pathPrefix: "/org-a/app" }),
    ...served("org-b", "gw-b", "fhir", { service: "fhir", pathPrefix: "/org-b/fhir" }),
    ...served("org-x", "gw-x", "other", { service: "http", pathPrefix: "/org-x/other" }),
  );
});

after(async () => {
  await A?.stop();
});

test("the operator's token has the chart's scoped RBAC: networks cluster-wide, no namespace list", async () => {
  assert.equal(await can("list", "namespaces"), false);
  assert.equal(await can("watch", "namespaces"), false);
  assert.equal(await can("list", "harmonynetworks.harmony.runbeam.io"), true);
  assert.equal(await can("list", "harmonygateways.harmony.runbeam.io", "--all-namespaces"), false);
  assert.equal(await can("get", "secrets", "-n", "org-x"), false);
  assert.equal(await can("get", "secrets", "-n", OPERATOR_NS), true, "network CA Secrets");
});

test("a network over watched and unwatched orgs: members are the watched ones; the other is reported", async () => {
  const st = await eventually("network status", async () => {
    const s = await network("hospitals");
    return s?.endpoints === 2 && s;
  });
  assert.deepEqual(st.members, ["org-a", "org-b"]);
  assert.equal(st.gateways, 2);
  assert.equal(st.operator, OPERATOR_NS);
  assert.deepEqual(st.skipped, [
    {
      kind: "Org",
      name: "org-x",
      reason: "NamespaceNotWatched",
      message: "namespace org-x is not watched by this operator (--watch-namespaces org-a,org-b)",
    },
  ]);
  const ready = st.conditions?.find((c) => c.type === "Ready");
  assert.equal(ready?.status, "True");
  assert.equal(ready?.reason, "MembersSkipped");
  assert.match(ready?.message ?? "", /skipped: org-x \(NamespaceNotWatched\)/);
  const row = (await A.kubectl(["get", "harmonynetwork", "hospitals", "--no-headers"])).trim();
  assert.match(row, /^hospitals\s+True\s+MembersSkipped\s+hospitals\.example\s+2\s+2\s+/);
});

test("member gateways get the directory and workload certificates from the network CA", async () => {
  const both = (ns: string, gw: string) => async () => {
    const d = await directory(ns, gw, "hospitals");
    return d?.entries.length === 2 && d;
  };
  const dir = await eventually("gw-a directory", both("org-a", "gw-a"));
  assert.deepEqual(
    dir.entries.map((e) => e.uri),
    ["harmony://hospitals.example/org-a/app", "harmony://hospitals.example/org-b/fhir"],
  );
  assert.deepEqual(dir.groups, [{ network: "hospitals", orgs: ["org-a", "org-b"] }]);
  // Each gateway's Secret is written by its own reconcile: gw-b's may come a moment later.
  assert.deepEqual(await eventually("gw-b directory", both("org-b", "gw-b")), dir);
  const caPem = await A.secretKey(OPERATOR_NS, "harmony-network-hospitals-ca", "ca.crt");
  const ca = new X509Certificate(caPem!);
  for (const [ns, gw] of [
    ["org-a", "gw-a"],
    ["org-b", "gw-b"],
  ] as const) {
    const crt = (await A.secretKey(ns, `${gw}-harmony-net`, "hospitals.tls.crt"))!;
    const leaf = new X509Certificate(pems(crt)[0]!);
    assert.equal(leaf.subjectAltName, `URI:spiffe://hospitals.example/org/${ns}/gateway/${gw}`);
    assert.ok(leaf.verify(ca.publicKey), `${gw}'s leaf is signed by the network CA`);
  }
  // The unwatched org's gateway: nothing written (the operator may not, and does not try).
  assert.equal(await A.secretKey("org-x", "gw-x-harmony-net", "hospitals.tls.crt"), undefined);
  // The config that names the files follows them (written after the network Secret).
  await eventually("gw-a config with harmony_networks", async () => {
    const cm = await A.get<{ data: Record<string, string> }>("/api/v1/namespaces/org-a/configmaps/gw-a-harmony-config");
    return cm?.data["config.toml"]?.includes("[harmony_networks.hospitals]");
  });
});

test("a namespaceSelector matches among the watched namespaces, read by GET; label changes are picked up", async () => {
  await A.kubectl(["label", "namespace", "org-b", "org-x", "team=radiology"]);
  await A.apply(
    cr("HarmonyNetwork", undefined, "radiology", {
      domain: "radiology.example",
      members: { namespaceSelector: { matchLabels: { team: "radiology" } } },
    }),
  );
  const st = await eventually("radiology members", async () => {
    const s = await network("radiology");
    return s?.members?.length === 1 && s;
  });
  assert.deepEqual(st.members, ["org-b"], "org-x matches but is not watched, so it is not seen");
  await A.kubectl(["label", "namespace", "org-a", "team=radiology"]);
  await eventually("org-a joins by its new label", async () => (await network("radiology"))?.members?.length === 2);
  assert.deepEqual((await network("radiology"))?.members, ["org-a", "org-b"]);
});

test("a network with no watched member is left alone: no status, no CA", async () => {
  await A.apply(
    cr("HarmonyNetwork", undefined, "elsewhere", { domain: "elsewhere.example", members: { orgs: ["org-x"] } }),
  );
  // The radiology network's status moving shows the operator is working; this one stays untouched.
  await A.kubectl(["label", "namespace", "org-a", "team-"]);
  await eventually("org-a leaves radiology", async () => (await network("radiology"))?.members?.length === 1);
  assert.equal(await network("elsewhere"), undefined);
  assert.equal(await A.secretKey(OPERATOR_NS, "harmony-network-elsewhere-ca", "ca.crt"), undefined);
  assert.doesNotMatch(A.log(), /forbidden/i, "every call the operator made was allowed by the chart's RBAC");
});

test("a network another operator serves (status.operator) is left alone; clearing the field hands it over", async () => {
  await A.apply(cr("HarmonyNetwork", undefined, "shared", { domain: "shared.example", members: { orgs: ["org-a"] } }));
  await eventually("shared served", async () => (await network("shared"))?.operator === OPERATOR_NS);
  const statusPatch = (operator: string | null) =>
    A.kubectl([
      "patch",
      "harmonynetwork",
      "shared",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { operator } }),
    ]);
  await statusPatch("team-b-operators");
  await A.apply(
    cr("HarmonyNetwork", undefined, "shared", { domain: "shared.example", members: { orgs: ["org-a", "org-b"] } }),
  );
  // The same worker then handles a later change to another network: once that shows, the edit
  // of "shared" has been seen too, and left alone.
  await A.kubectl(["label", "namespace", "org-a", "team=radiology"]);
  await eventually("radiology sees org-a again", async () => (await network("radiology"))?.members?.length === 2);
  const left = await network("shared");
  assert.equal(left?.operator, "team-b-operators");
  assert.deepEqual(left?.members, ["org-a"], "the other operator's status is not rewritten");
  await eventually("the operator logs why", () =>
    Promise.resolve(A.log().includes("Network served by another operator")),
  );

  await statusPatch(null);
  const taken = await eventually("shared taken over", async () => {
    const s = await network("shared");
    return s?.operator === OPERATOR_NS && s.members?.length === 2 && s;
  });
  assert.deepEqual(taken.members, ["org-a", "org-b"]);
});
