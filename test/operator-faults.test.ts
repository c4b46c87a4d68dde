/**
 * The operator under API faults, against the real kube-apiserver through a fault-injecting proxy
 * (test/faultproxy.ts): a 409 on a write is retried; a watch that ends is resumed; a watch that goes
 * quiet is caught up by the periodic relist. And a scoped operator (--watch-namespaces) touches
 * only its namespaces.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { startFaultProxy, type FaultProxy } from "./faultproxy.js";
import { ROOT, sleep } from "../dataplane/test/helpers.js";

let cp: ControlPlane;
let proxy: FaultProxy;
let operator: ChildProcess;
let log = "";

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}\noperator log:\n${log.slice(-3000)}`);
}

const gateway = (ns: string, name: string) =>
  JSON.stringify({
    apiVersion: "harmony.runbeam.io/v1alpha1",
    kind: "HarmonyGateway",
    metadata: { name, namespace: ns },
    spec: { networks: [{ name: "web", port: 8080 }] },
  });
const configMapExists = async (ns: string, name: string) =>
  (await cp.kubectl(["get", "configmap", `${name}-harmony-config`, "-n", ns])).code === 0;
const programmed = async (ns: string, name: string) => {
  const o = JSON.parse(await kubectl(["get", "harmonygateway", name, "-n", ns, "-o", "json"])) as {
    status?: { conditions?: { type: string; status: string }[] };
  };
  return o.status?.conditions?.find((c) => c.type === "Programmed")?.status === "True";
};

before(async () => {
  cp = await startControlPlane();
  await cp.installCrds();
  for (const ns of ["fa", "fb", "fc"]) await kubectl(["create", "namespace", ns]);
  proxy = await startFaultProxy(cp);
  operator = spawn(
    process.execPath,
    [
      join(ROOT, "operator/dist/main.js"),
      "--kubeconfig",
      proxy.kubeconfig,
      "--leader-elect",
      "false",
      "--health-port",
      "0",
      "--manage-workloads",
      "false",
      "--watch-namespaces",
      "fb,fa",
      "--relist-interval",
      "3s",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout!.setEncoding("utf8").on("data", (c: string) => (log += c));
  operator.stderr!.setEncoding("utf8").on("data", (c: string) => (log += c));
  await until("the operator to start", () => Promise.resolve(log.includes('"watch_namespaces":["fa","fb"]')));
});

after(async () => {
  if (operator && operator.exitCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  await proxy?.close();
  await cp?.stop();
});

test("--watch-namespaces: gateways in the listed namespaces are rendered; others are never read", async () => {
  for (const ns of ["fa", "fb", "fc"]) await kubectl(["apply", "-f", "-"], gateway(ns, "scoped"));
  await until(
    "fa and fb rendered",
    async () => (await configMapExists("fa", "scoped")) && configMapExists("fb", "scoped"),
  );
  await sleep(1000);
  assert.equal(await configMapExists("fc", "scoped"), false, "fc is not watched");
  const requests = proxy.log.map((l) => l.split("?")[0]!);
  assert.ok(requests.some((r) => r.includes("/namespaces/fa/harmonygateways")));
  assert.ok(requests.some((r) => r.includes("/namespaces/fb/harmonygateways")));
  // HarmonyNetworks are cluster-scoped: the one cluster-wide watch a scoped operator keeps (README,
  // "Networks with --watch-namespaces"); every namespaced kind is read per listed namespace.
  assert.ok(requests.some((r) => r.endsWith("/v1alpha1/harmonynetworks")));
  assert.deepEqual(
    requests.filter(
      (r) =>
        r.includes("/namespaces/fc/") ||
        /\/v1alpha1\/harmony(?!networks$)\w+$|\/api\/v1\/(pods|secrets|configmaps|namespaces)$/.test(r),
    ),
    [],
    "no request outside the listed namespaces, and no cluster-wide list or watch but HarmonyNetworks'",
  );
});

test("a 409 Conflict on a write is retried until the write lands", async () => {
  const cmWrite = proxy.fail("PATCH", /^\/api\/v1\/namespaces\/fa\/configmaps\/conflicted-harmony-config$/, 2);
  const statusWrite = proxy.fail(
    "PATCH",
    /^\/apis\/harmony\.runbeam\.io\/v1alpha1\/namespaces\/fa\/harmonygateways\/conflicted\/status$/,
    1,
  );
  await kubectl(["apply", "-f", "-"], gateway("fa", "conflicted"));
  await until(
    "the ConfigMap written and the gateway Programmed",
    async () => (await configMapExists("fa", "conflicted")) && programmed("fa", "conflicted"),
  );
  assert.equal(cmWrite.remaining, 0, "both injected ConfigMap conflicts were hit");
  assert.equal(statusWrite.remaining, 0, "the injected status conflict was hit");
  const retries = log
    .split("\n")
    .filter((l) => l.includes("Reconcile failed; retrying") && l.includes("fa/conflicted"));
  assert.equal(retries.length, 3, "one retry per injected conflict");
});

test("a watch that ends is resumed from where it stopped", async () => {
  const mark = proxy.log.length;
  // 5 kinds × 2 namespaces (Secrets are read on demand, never watched).
  assert.ok(proxy.endWatches() >= 10, "every informer (5 kinds × 2 namespaces) had a watch open");
  await kubectl(["apply", "-f", "-"], gateway("fb", "after-cut"));
  await until("gateway after-cut rendered", () => configMapExists("fb", "after-cut"));
  const resumed = proxy.log
    .slice(mark)
    .filter((l) => /\/namespaces\/fb\/harmonygateways\?/.test(l) && /watch=true/.test(l));
  assert.ok(resumed.length > 0, "the gateway watch in fb was opened again");
  assert.match(resumed[0]!, /resourceVersion=\d+/, "resumed from the last seen resourceVersion");
});

test("a watch that goes quiet is caught up by the periodic relist", async () => {
  proxy.quiet(true);
  try {
    const mark = proxy.log.length;
    await kubectl(["apply", "-f", "-"], gateway("fb", "while-quiet"));
    await until("gateway while-quiet rendered although no watch event arrived", () =>
      configMapExists("fb", "while-quiet"),
    );
    const lists = proxy.log
      .slice(mark)
      .filter((l) => /^GET \/apis\/harmony\.runbeam\.io\/v1alpha1\/namespaces\/fb\/harmonygateways$/.test(l));
    assert.ok(lists.length > 0, "a full list of fb's gateways was made");
  } finally {
    proxy.quiet(false);
  }
});
