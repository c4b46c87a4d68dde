/**
 * Status that never lies, against a real kube-apiserver: a pipeline its gateway stops taking
 * (selector, allowed namespaces, gateway deleted) says so on every condition; a pipeline moved to
 * another gateway leaves the old one's config at once; messages only claim what is true; repeated
 * Events aggregate into one with a count; and the operator's /readyz follows its API access (the
 * operator runs as a ServiceAccount whose RBAC binding the test revokes and restores).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { POD_READY, startSyncer } from "./syncer.js";
import { ROOT, eventually as poll, freePort, sleep, startDataplane, tempDir } from "../dataplane/test/helpers.js";
import { writeKubeconfig } from "./kubeconfig.js";

let cp: ControlPlane;
let operator: ChildProcess;
let log = "";
let healthPort: number;

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
const apply = (...items: object[]) =>
  kubectl(
    ["apply", "--server-side", "--force-conflicts", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "List", items }),
  );
const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${log.slice(-4000)}` });
const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, "-o", "json"])) as T;

type Cond = { type: string; status: string; reason: string; message: string };
const conditions = async (kind: string, ns: string, name: string) => {
  const o = await getJson<{ status?: { conditions?: Cond[] } }>(["get", kind, name, "-n", ns]);
  return Object.fromEntries((o.status?.conditions ?? []).map((c) => [c.type, c])) as Record<string, Cond | undefined>;
};
const cr = (kind: string, ns: string, name: string, spec: object, labels?: Record<string, string>) => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind,
  metadata: { name, namespace: ns, ...(labels ? { labels } : {}) },
  spec,
});
const gateway = (ns: string, name: string, extra: object = {}) =>
  cr("HarmonyGateway", ns, name, { networks: [{ name: "web", port: 8080 }], ...extra });
const endpoint = (ns: string, name: string) =>
  cr("HarmonyEndpoint", ns, name, { service: "http", pathPrefix: `/${ns}/${name}` });
const pipeline = (
  ns: string,
  name: string,
  gw: { name: string; namespace?: string },
  extra: object = {},
  labels?: Record<string, string>,
) =>
  cr(
    "HarmonyPipeline",
    ns,
    name,
    {
      gatewayRef: gw,
      endpoints: [{ name: "ep" }],
      backends: [{ service: "http", url: "http://127.0.0.1:1" }],
      ...extra,
    },
    labels,
  );
const configKeys = async (ns: string, gw: string) =>
  Object.keys(
    (await getJson<{ data?: Record<string, string> }>(["get", "configmap", `${gw}-harmony-config`, "-n", ns])).data ??
      {},
  );
const readyz = async () => {
  const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
  return { status: res.status, body: await res.text() };
};

before(async () => {
  cp = await startControlPlane();
  await cp.installCrds();
  // The operator runs as a ServiceAccount bound to cluster-admin, so the test can take the binding away.
  await kubectl(["create", "namespace", "op"]);
  await kubectl(["create", "serviceaccount", "harmony", "-n", "op"]);
  await kubectl([
    "create",
    "clusterrolebinding",
    "harmony-op",
    "--clusterrole=cluster-admin",
    "--serviceaccount=op:harmony",
  ]);
  const token = (await kubectl(["create", "token", "harmony", "-n", "op", "--duration=2h"])).trim();
  const kubeconfig = writeKubeconfig(join(cp.dir, "operator-sa.kubeconfig"), {
    server: cp.server,
    caPem: cp.caPem,
    token,
  });
  healthPort = await freePort();
  operator = spawn(
    process.execPath,
    [
      join(ROOT, "operator/dist/main.js"),
      "--kubeconfig",
      kubeconfig,
      "--leader-elect",
      "false",
      "--manage-workloads",
      "false",
      "--health-port",
      String(healthPort),
      "--api-check-interval",
      "500ms",
      "--log-level",
      "debug",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout!.setEncoding("utf8").on("data", (c: string) => (log += c));
  operator.stderr!.setEncoding("utf8").on("data", (c: string) => (log += c));
});

after(async () => {
  if (operator && operator.exitCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  await cp?.stop();
});

test("a pipeline its gateway stops taking (selector, allowed namespaces) says why on every condition, once", async () => {
  const ns = "detach";
  const other = "detach-other";
  await kubectl(["create", "namespace", ns]);
  await kubectl(["create", "namespace", other]);
  await apply(
    gateway(ns, "gw", { allowedNamespaces: [other] }),
    endpoint(ns, "ep"),
    endpoint(other, "ep"),
    pipeline(ns, "local", { name: "gw" }),
    pipeline(other, "remote", { name: "gw", namespace: ns }),
  );
  const programmed = (pns: string, name: string) =>
    eventually(`${pns}/${name} Programmed=True`, async () => {
      const c = await conditions("harmonypipeline", pns, name);
      return c.Programmed?.status === "True" ? c : undefined;
    });
  await programmed(ns, "local");
  await programmed(other, "remote");

  // The selector stops matching the local pipeline.
  await apply(gateway(ns, "gw", { allowedNamespaces: [other], pipelineSelector: { matchLabels: { tier: "gold" } } }));
  const unselected = await eventually("local NotAllowedByGateway", async () => {
    const c = await conditions("harmonypipeline", ns, "local");
    return c.Accepted?.reason === "NotAllowedByGateway" ? c : undefined;
  });
  assert.equal(unselected.Accepted!.status, "False");
  assert.match(unselected.Accepted!.message, /selects pipelines labelled tier=gold .*does not match on tier/);
  assert.deepEqual(
    [unselected.Programmed?.status, unselected.Programmed?.reason, unselected.Ready?.status, unselected.Ready?.reason],
    ["False", "NotAllowedByGateway", "False", "NotAllowedByGateway"],
  );
  await eventually("the local pipeline out of the config", async () =>
    (await configKeys(ns, "gw")).includes("pipeline.detach.local.toml") ? undefined : true,
  );

  // Labelled to match: attached again.
  await apply(
    pipeline(ns, "local", { name: "gw" }, {}, { tier: "gold" }),
    pipeline(other, "remote", { name: "gw", namespace: ns }, {}, { tier: "gold" }),
  );
  await programmed(ns, "local");
  await programmed(other, "remote");

  // The other namespace is no longer allowed.
  await apply(gateway(ns, "gw", { pipelineSelector: { matchLabels: { tier: "gold" } } }));
  const disallowed = await eventually("remote NotAllowedByGateway", async () => {
    const c = await conditions("harmonypipeline", other, "remote");
    return c.Accepted?.reason === "NotAllowedByGateway" ? c : undefined;
  });
  assert.match(disallowed.Accepted!.message, /does not allow pipelines from namespace detach-other/);
  assert.equal(disallowed.Programmed?.status, "False");

  // Written once: no status writes while nothing changes.
  const rv = async () =>
    (await getJson<{ metadata: { resourceVersion: string } }>(["get", "harmonypipeline", "remote", "-n", other]))
      .metadata.resourceVersion;
  const before = await rv();
  await sleep(3000);
  assert.equal(await rv(), before, "no steady-state status writes on a detached pipeline");
});

test("a deleted gateway's pipelines say GatewayNotFound, not Programmed=True from before", async () => {
  const ns = "gone";
  await kubectl(["create", "namespace", ns]);
  await apply(gateway(ns, "gw"), endpoint(ns, "ep"), pipeline(ns, "local", { name: "gw" }));
  await eventually("local Programmed=True", async () =>
    (await conditions("harmonypipeline", ns, "local")).Programmed?.status === "True" ? true : undefined,
  );
  await kubectl(["delete", "harmonygateway", "gw", "-n", ns]);
  const gone = await eventually("local GatewayNotFound", async () => {
    const c = await conditions("harmonypipeline", ns, "local");
    return c.Accepted?.reason === "GatewayNotFound" ? c : undefined;
  });
  assert.deepEqual(
    [gone.ResolvedRefs?.status, gone.Programmed?.status, gone.Programmed?.reason, gone.Ready?.status],
    ["Unknown", "False", "GatewayNotFound", "False"],
  );
});

test("a pipeline moved to another gateway leaves the old gateway's config without waiting for a relist", async () => {
  const ns = "move";
  await kubectl(["create", "namespace", ns]);
  await apply(gateway(ns, "a"), gateway(ns, "b"), endpoint(ns, "ep"), pipeline(ns, "p", { name: "a" }));
  await eventually("p in a's config", async () =>
    (await configKeys(ns, "a")).includes("pipeline.move.p.toml") ? true : undefined,
  );
  await apply(pipeline(ns, "p", { name: "b" }));
  await eventually("p in b's config", async () =>
    (await configKeys(ns, "b")).includes("pipeline.move.p.toml") ? true : undefined,
  );
  // The relist runs every 5 minutes; only a requeue of the old gateway gets it out this soon.
  await eventually(
    "p out of a's config",
    async () => ((await configKeys(ns, "a")).includes("pipeline.move.p.toml") ? undefined : true),
    20_000,
  );
});

test("an excluded pipeline's Ready does not count pods serving a config it is not in", async () => {
  const ns = "words";
  await kubectl(["create", "namespace", ns]);
  await apply(
    gateway(ns, "gw"),
    endpoint(ns, "ep"),
    pipeline(ns, "bad", { name: "gw" }, { middleware: [{ name: "m", type: "carrier_pigeon" }] }),
  );
  const bad = await eventually("bad excluded", async () => {
    const c = await conditions("harmonypipeline", ns, "bad");
    return c.Ready?.reason === "UnsupportedValue" ? c : undefined;
  });
  assert.doesNotMatch(bad.Ready!.message, /pods serving/, "an excluded pipeline is served by no pod");
  assert.equal(bad.Ready!.message, "not served: left out of the gateway's config");
});

test("a gateway rejected on its first render does not claim a previous config keeps serving", async () => {
  const ns = "first";
  await kubectl(["create", "namespace", ns]);
  // The data plane rejects an empty management base path: there never was a config to keep.
  await apply(gateway(ns, "broken", { management: { basePath: "/" } }));
  const broken = await eventually("broken gateway InvalidGateway", async () => {
    const c = await conditions("harmonygateway", ns, "broken");
    return c.Programmed?.reason === "InvalidGateway" ? c : undefined;
  });
  assert.doesNotMatch(broken.Programmed!.message, /previous config keeps serving/);
  assert.match(broken.Programmed!.message, /no config has been written/);
});

test("an endpoint is InUse only while a programmed pipeline uses it", async () => {
  const ns = "inuse";
  await kubectl(["create", "namespace", ns]);
  await apply(
    gateway(ns, "gw"),
    endpoint(ns, "ep"),
    pipeline(ns, "bad", { name: "gw" }, { middleware: [{ name: "m", type: "carrier_pigeon" }] }),
  );
  await eventually("bad excluded", async () =>
    (await conditions("harmonypipeline", ns, "bad")).Programmed?.reason === "UnsupportedValue" ? true : undefined,
  );
  // The endpoint's only user is not programmed: not InUse.
  const ep = await eventually("endpoint Ready reported", async () => {
    const c = await conditions("harmonyendpoint", ns, "ep");
    return c.Ready?.message.includes("1 pipeline") ? c.Ready : undefined;
  });
  assert.deepEqual([ep.status, ep.reason], ["False", "NotProgrammed"]);
  // Fixed, the pipeline is programmed and the endpoint follows.
  await apply(pipeline(ns, "bad", { name: "gw" }, { middleware: [{ name: "m", type: "passthru" }] }));
  const inUse = await eventually("endpoint InUse", async () => {
    const c = await conditions("harmonyendpoint", ns, "ep");
    return c.Ready?.reason === "InUse" ? c.Ready : undefined;
  });
  assert.equal(inUse.status, "True");
});

test("an endpoint gaining a pipeline goes from Unused to InUse without a NotProgrammed write between", async () => {
  const ns = "onewrite";
  await kubectl(["create", "namespace", ns]);
  await apply(gateway(ns, "gw"), endpoint(ns, "ep"));
  const unused = await eventually("endpoint Unused", async () => {
    const o = await getJson<{ metadata: { resourceVersion: string }; status?: { conditions?: Cond[] } }>([
      "get",
      "harmonyendpoint",
      "ep",
      "-n",
      ns,
    ]);
    return o.status?.conditions?.find((c) => c.type === "Ready")?.reason === "Unused" ? o : undefined;
  });
  await apply(pipeline(ns, "p", { name: "gw" }));
  await eventually("endpoint InUse", async () =>
    (await conditions("harmonyendpoint", ns, "ep")).Ready?.reason === "InUse" ? true : undefined,
  );
  // Every version of the endpoint since it was Unused, replayed by a watch from that resourceVersion
  // (the stream ends after a second; the replay is sent at once).
  const replay = await kubectl([
    "get",
    "--raw",
    `/apis/harmony.runbeam.io/v1alpha1/namespaces/${ns}/harmonyendpoints?watch=1&fieldSelector=metadata.name%3Dep` +
      `&resourceVersion=${unused.metadata.resourceVersion}&timeoutSeconds=1`,
  ]);
  const readyReasons = replay
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { object: { status?: { conditions?: Cond[] } } })
    .map((e) => e.object.status?.conditions?.find((c) => c.type === "Ready")?.reason);
  assert.deepEqual(readyReasons, ["InUse"], "one status write: Unused, then InUse");
});

test("a repeated transition is one Event with a count, not one Event per repeat", async () => {
  const ns = "events";
  await kubectl(["create", "namespace", ns]);
  const bad = pipeline(ns, "flappy", { name: "gw" }, { middleware: [{ name: "m", type: "carrier_pigeon" }] });
  const good = pipeline(ns, "flappy", { name: "gw" }, { middleware: [{ name: "m", type: "passthru" }] });
  await apply(gateway(ns, "gw"), endpoint(ns, "ep"), bad);
  const accepted = (status: string) =>
    eventually(`flappy Accepted=${status}`, async () =>
      (await conditions("harmonypipeline", ns, "flappy")).Accepted?.status === status ? true : undefined,
    );
  await accepted("False");
  for (let i = 0; i < 2; i++) {
    await apply(good);
    await accepted("True");
    await apply(bad);
    await accepted("False");
  }
  type Ev = { reason: string; message: string; count?: number; involvedObject: { name: string } };
  const rejections = await eventually("the third rejection counted", async () => {
    const evs = (await getJson<{ items: Ev[] }>(["get", "events", "-n", ns])).items.filter(
      (e) =>
        e.involvedObject.name === "flappy" && e.reason === "UnsupportedValue" && e.message.startsWith("Accepted=False"),
    );
    return evs.reduce((n, e) => n + (e.count ?? 1), 0) >= 3 ? evs : undefined;
  });
  assert.equal(rejections.length, 1, `one Event, aggregated: ${JSON.stringify(rejections)}`);
  assert.ok((rejections[0]!.count ?? 1) >= 3, `count ${rejections[0]!.count}`);
});

test("/readyz follows the operator's API access: 503 with the reason when its RBAC is revoked, 200 when restored", async () => {
  await eventually("readyz 200", async () => ((await readyz()).status === 200 ? true : undefined));
  assert.equal((await readyz()).body, "ok");
  await kubectl(["delete", "clusterrolebinding", "harmony-op"]);
  const revoked = await eventually("readyz 503", async () => {
    const r = await readyz();
    return r.status === 503 ? r : undefined;
  });
  assert.match(revoked.body, /not authorised to list harmonygateways\.harmony\.runbeam\.io cluster-wide/);
  await kubectl([
    "create",
    "clusterrolebinding",
    "harmony-op",
    "--clusterrole=cluster-admin",
    "--serviceaccount=op:harmony",
  ]);
  await eventually("readyz 200 again", async () => ((await readyz()).status === 200 ? true : undefined));
});

test("an edit that changes only the gateway's config hash rewrites no other pipeline's status", async () => {
  const ns = "quiet";
  const n = 12;
  await kubectl(["create", "namespace", ns]);
  const names = Array.from({ length: n }, (_, i) => `p${i}`);
  await apply(
    gateway(ns, "gw"),
    ...names.map((p) => endpoint(ns, `e-${p}`)),
    ...names.map((p) => pipeline(ns, p, { name: "gw" }, { endpoints: [{ name: `e-${p}` }] })),
    endpoint(ns, "other"),
    pipeline(ns, "x", { name: "gw" }, { endpoints: [{ name: "other" }] }),
  );
  type Pipelines = {
    items: { metadata: { name: string; resourceVersion: string }; status?: { conditions?: Cond[] } }[];
  };
  const pipelines = async () => (await getJson<Pipelines>(["get", "harmonypipelines", "-n", ns])).items;
  const gwHash = async () =>
    (await getJson<{ status?: { configHash?: string; pipelines?: number } }>(["get", "harmonygateway", "gw", "-n", ns]))
      .status;
  // A reconcile logs "Reconciled gateway" with its hash only after its pipeline status writes are done.
  const reconciled = (hash: string) =>
    eventually(`a finished reconcile of ${hash.slice(0, 12)}`, () =>
      Promise.resolve(
        log.split("\n").some((l) => l.includes("Reconciled gateway") && l.includes(`"hash":"${hash}"`)) || undefined,
      ),
    );
  const h1 = await eventually("all pipelines in the config", async () => {
    const s = await gwHash();
    return s?.pipelines === n + 1 && s.configHash ? s.configHash : undefined;
  });
  await reconciled(h1);
  await eventually("all pipelines Programmed", async () =>
    (await pipelines()).every((p) => p.status?.conditions?.some((c) => c.type === "Programmed" && c.status === "True"))
      ? true
      : undefined,
  );
  const before = new Map((await pipelines()).map((p) => [p.metadata.name, p.metadata.resourceVersion]));

  // One endpoint that only pipeline x uses changes: the config (and its hash) changes, and nothing
  // about p0..p(n-1) does, so their status must not be written again.
  await apply(cr("HarmonyEndpoint", ns, "other", { service: "http", pathPrefix: `/${ns}/other-v2` }));
  const h2 = await eventually("the new config hash", async () => {
    const h = (await gwHash())?.configHash;
    return h && h !== h1 ? h : undefined;
  });
  await reconciled(h2);
  const after = await pipelines();
  const rewritten = after.filter(
    (p) => names.includes(p.metadata.name) && before.get(p.metadata.name) !== p.metadata.resourceVersion,
  );
  assert.deepEqual(
    rewritten.map((p) => p.metadata.name),
    [],
    "status writes for pipelines whose own conditions did not change",
  );
  // The hash is still reported, where it belongs: on the gateway.
  const gw = await conditions("harmonygateway", ns, "gw");
  assert.match(gw.Programmed!.message, new RegExp(`^config ${h2.slice(0, 12)} `));
  const p0 = after.find((p) => p.metadata.name === "p0")!.status!.conditions!.find((c) => c.type === "Programmed")!;
  assert.equal(p0.status, "True");
  assert.match(p0.message, new RegExp(`HarmonyGateway ${ns}/gw`));
});

test("an edit of one pipeline leaves the gateway's other pipelines Ready while the pods reload", async (t) => {
  const ns = "reload";
  await kubectl(["create", "namespace", ns]);
  const web = await freePort();
  const mgmt = await freePort();
  await apply(
    cr("HarmonyGateway", ns, "gw", {
      networks: [{ name: "web", port: web, bindAddress: "127.0.0.1" }],
      management: { port: mgmt },
    }),
    endpoint(ns, "ep-a"),
    endpoint(ns, "ep-b"),
    pipeline(ns, "a", { name: "gw" }, { endpoints: [{ name: "ep-a" }] }),
    pipeline(ns, "b", { name: "gw" }, { endpoints: [{ name: "ep-b" }] }),
  );
  const gwStatus = async () =>
    (await getJson<{ status?: { configHash?: string; pipelines?: number } }>(["get", "harmonygateway", "gw", "-n", ns]))
      .status;
  await eventually("both pipelines in the config", async () =>
    (await gwStatus())?.pipelines === 2 ? true : undefined,
  );
  // A data-plane pod: a real data plane fed from the ConfigMap the kubelet's way, and a Pod object
  // that tells the operator where it is (its /readyz says which config it serves).
  const dir = join(tempDir(), "config");
  const kc = (args: string[]) => spawn("kubectl", ["--kubeconfig", cp.kubeconfig, ...args], { env: cp.env });
  let syncer = startSyncer(kc, ns, "gw-harmony-config", dir);
  t.after(() => syncer.stop());
  await eventually("the first sync", () => Promise.resolve(syncer.swaps() > 0 || undefined));
  const dp = await startDataplane(join(dir, "config.toml"), { HARMONY_POLL_MS: "200" });
  t.after(() => dp.stop());
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "gw-pod", namespace: ns, labels: { "harmony.runbeam.io/gateway": "gw" } },
      spec: { containers: [{ name: "dataplane", image: "harmony" }] },
    }),
  );
  await kubectl([
    ..."patch pod gw-pod --subresource=status --type=merge".split(" "),
    ...["-n", ns, "-p", JSON.stringify({ status: POD_READY })],
  ]);
  const ready = async (name: string) => (await conditions("harmonypipeline", ns, name)).Ready;
  await eventually(
    "both pipelines Ready",
    async () => ((await ready("a"))?.status === "True" && (await ready("b"))?.status === "True") || undefined,
    60_000,
  );
  const h1 = (await gwStatus())!.configHash!;
  const rv = async (name: string) =>
    (await getJson<{ metadata: { resourceVersion: string } }>(["get", "harmonypipeline", name, "-n", ns])).metadata
      .resourceVersion;
  const bBefore = await rv("b");

  // The pod stops getting new config (as while the kubelet has not synced it yet) and pipeline a's
  // endpoint changes: the pod still serves the old config, which holds b exactly as it is now.
  syncer.stop();
  await apply(cr("HarmonyEndpoint", ns, "ep-a", { service: "http", pathPrefix: `/${ns}/ep-a-v2` }));
  const h2 = await eventually("the new config hash", async () => {
    const h = (await gwStatus())?.configHash;
    return h && h !== h1 ? h : undefined;
  });
  await eventually(`a finished reconcile of ${h2.slice(0, 12)}`, () =>
    Promise.resolve(
      log.split("\n").some((l) => l.includes("Reconciled gateway") && l.includes(`"hash":"${h2}"`)) || undefined,
    ),
  );
  const gwReady = (await conditions("harmonygateway", ns, "gw")).Ready!;
  assert.equal(gwReady.status, "False", "the gateway's pods do not serve its newest config");
  const a = (await ready("a"))!;
  assert.deepEqual([a.status, a.reason], ["False", "WaitingForDataPlane"], a.message);
  const b = (await ready("b"))!;
  assert.deepEqual(
    [b.status, b.reason, b.message],
    ["True", "Serving", "1/1 pods serving the config of HarmonyGateway reload/gw"],
  );
  assert.equal(await rv("b"), bBefore, "no status write for the pipeline the edit did not touch");

  // The pod gets the new config: a is Ready again.
  syncer = startSyncer(kc, ns, "gw-harmony-config", dir);
  await eventually(
    "a Ready on the new config",
    async () => ((await ready("a"))?.status === "True" ? true : undefined),
    60_000,
  );
  assert.equal((await ready("b"))?.status, "True");
});
