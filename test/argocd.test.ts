/**
 * A real Argo CD (v3.6.2, test/argocd/build.sh) against the test control plane: the chart and the
 * FHIR example sync from a local git repository (file://) as the two Applications that
 * charts/harmony/argocd/README.md describes, to Synced/Healthy with no diff after a hard refresh,
 * and the Lua health check, run by Argo CD itself, reads live resources: Progressing while no data
 * plane serves, Healthy once one does, Degraded with the reason when a referenced Secret goes,
 * Healthy again when it comes back. Deleting the Applications with --cascade leaves the CRDs.
 *
 * No kubelet runs, so the operator and the data plane are host processes: the chart is installed
 * with `replicaCount: 0` (its operator Deployment exists, gets a status from the deployment
 * controller and is Healthy, but runs no pod), the operator runs from operator/dist, and the data
 * plane is fed the way test/operator.test.ts feeds it (test/syncer.ts) behind a Pod object that
 * points the operator at it.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { startArgoCd, type ArgoCd } from "./argocd/argocd.js";
import { POD_READY, startSyncer, type Syncer } from "./syncer.js";
import { CLI, DATAPLANE_NODE_FLAGS, ROOT, eventually, freePort, run, tempDir } from "../dataplane/test/helpers.js";

const NS = "clinic";
const GATEWAY = "fhir-gateway";
const HEALTH_LUA = readFileSync(join(ROOT, "charts/harmony/argocd/health.lua"), "utf8");
// Syncs wait on the health check, so each of these is a hang guard, not a performance threshold.
const SYNC_TIMEOUT_MS = 240_000;

let cp: ControlPlane;
let argo: ArgoCd;
let operator: ChildProcess | undefined;
let operatorLog = "";
let syncer: Syncer | undefined;
let dataplane: ChildProcess | undefined;
let dataplaneLog = "";
let repoUrl = "";
let webPort = 0;
let mgmtPort = 0;

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const context = () =>
  [
    `--- controller ---\n${argo?.tail("controller", 25)}`,
    `--- repo-server ---\n${argo?.tail("repo-server", 15)}`,
    `--- operator ---\n${operatorLog.slice(-3000)}`,
    `--- data plane ---\n${dataplaneLog.slice(-2000)}`,
  ].join("\n");

/** How long each wait took, reported as a diagnostic: where the test's wall time goes. */
const waited: string[] = [];
const wait = async <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = SYNC_TIMEOUT_MS) => {
  const t0 = Date.now();
  const v = await eventually(what, fn, { timeoutMs, intervalMs: 500, context });
  waited.push(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return v;
};

interface AppStatus {
  sync?: { status?: string };
  health?: { status?: string; message?: string };
  operationState?: { phase?: string; message?: string; retryCount?: number };
}
interface TreeNode {
  kind: string;
  name: string;
  namespace?: string;
  health?: { status?: string; message?: string };
}

/** The Application as argocd-server returns it (GET /api/v1/applications/<name>). */
async function app(name: string): Promise<{ status?: AppStatus }> {
  const r = await fetch(`http://${argo.server}/api/v1/applications/${name}`);
  if (!r.ok) throw new Error(`GET application ${name}: ${r.status} ${await r.text()}`);
  return (await r.json()) as { status?: AppStatus };
}

/** Health of one resource as Argo CD shows it (the resource tree; v3 keeps it out of the CR). */
async function health(appName: string, kind: string, name: string): Promise<{ status?: string; message?: string }> {
  const r = await fetch(`http://${argo.server}/api/v1/applications/${appName}/resource-tree`);
  if (!r.ok) throw new Error(`GET resource-tree ${appName}: ${r.status} ${await r.text()}`);
  const tree = (await r.json()) as { nodes?: TreeNode[] };
  const node = tree.nodes?.find((n) => n.kind === kind && n.name === name);
  return node?.health ?? {};
}

const syncedHealthy = async (name: string) => {
  const s = (await app(name)).status;
  return s?.sync?.status === "Synced" && s.health?.status === "Healthy" && s.operationState?.phase === "Succeeded"
    ? s
    : undefined;
};

/** A git repository with the chart and the FHIR example, as a platform team would lay it out. */
function makeRepo(): string {
  const dir = tempDir("harmony-argocd-repo-");
  // The repository's layout: the chart's crds-src links to ../../crds. Argo CD refuses a repository
  // with a symlink that leaves it, so the link is copied as it is, with what it points at.
  cpSync(join(ROOT, "charts/harmony"), join(dir, "charts/harmony"), { recursive: true, verbatimSymlinks: true });
  cpSync(join(ROOT, "crds"), join(dir, "crds"), { recursive: true });
  mkdirSync(join(dir, "apps/examples"), { recursive: true });
  cpSync(join(ROOT, "examples/kubernetes/fhir-gateway.yaml"), join(dir, "apps/examples/fhir-gateway.yaml"));
  // Something that must wait until the gateway serves (a smoke-test Job, a client's settings): a
  // later wave, so Argo CD holds it until the Harmony resources of wave 1 are Healthy.
  writeFileSync(
    join(dir, "apps/examples/after-gateway.yaml"),
    JSON.stringify({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "fhir-clients", annotations: { "argocd.argoproj.io/sync-wave": "2" } },
      data: { base: "/fhir" },
    }),
  );
  // The example as is, with the README's wave and sync option on the Harmony resources, one
  // replica, and loopback ports (the data plane is a host process here).
  writeFileSync(
    join(dir, "apps/examples/kustomization.yaml"),
    JSON.stringify({
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      namespace: NS,
      resources: ["fhir-gateway.yaml", "after-gateway.yaml"],
      patches: [
        {
          target: { group: "harmony.runbeam.io" },
          patch: JSON.stringify([
            {
              op: "add",
              path: "/metadata/annotations",
              value: {
                "argocd.argoproj.io/sync-wave": "1",
                "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true",
              },
            },
          ]),
        },
        {
          target: { kind: "HarmonyGateway", name: GATEWAY },
          patch: JSON.stringify([
            { op: "replace", path: "/spec/replicas", value: 1 },
            { op: "replace", path: "/spec/networks/0/port", value: webPort },
            { op: "add", path: "/spec/networks/0/bindAddress", value: "127.0.0.1" },
            { op: "replace", path: "/spec/management/port", value: mgmtPort },
          ]),
        },
      ],
    }),
  );
  return dir;
}

async function initRepo(): Promise<string> {
  const dir = makeRepo();
  for (const args of [
    ["init", "-q", "-b", "main"],
    ["add", "-A"],
    ["commit", "-q", "-m", "chart and examples"],
  ]) {
    const r = await run("git", ["-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.org", ...args]);
    if (r.code !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
  }
  return `file://${dir}`;
}

function application(name: string, spec: Record<string, unknown>) {
  return {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "Application",
    // The finalizer makes deleting the Application delete what it deployed (a cascade delete).
    metadata: { name, namespace: "argocd", finalizers: ["resources-finalizer.argocd.argoproj.io"] },
    spec: { project: "default", ...spec },
  };
}

/**
 * The data plane as a pod would run it: the operator renders secret options as paths relative to
 * the config directory (../secrets/<key>, where the pod mounts the gateway's Secret beside it).
 */
async function startDataplaneWithSecrets(configFile: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [...DATAPLANE_NODE_FLAGS, CLI, "--config", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HARMONY_POLL_MS: "200" },
  });
  p.stdout.setEncoding("utf8").on("data", (c: string) => (dataplaneLog += c));
  p.stderr.setEncoding("utf8").on("data", (c: string) => (dataplaneLog += c));
  await eventually(
    "the data plane to start",
    () => {
      if (p.exitCode !== null) throw new Error(`data plane exited (${p.exitCode})`);
      return dataplaneLog.includes("harmony data plane started");
    },
    { timeoutMs: 30_000, context: () => dataplaneLog.slice(-3000) },
  );
  return p;
}

before(async () => {
  cp = await startControlPlane({ controllerManager: true, extraControllers: ["deployment"] });
  const cm: Record<string, string> = {};
  for (const kind of ["HarmonyGateway", "HarmonyEndpoint", "HarmonyPipeline"]) {
    cm[`resource.customizations.health.harmony.runbeam.io_${kind}`] = HEALTH_LUA;
  }
  argo = await startArgoCd(cp, { argocdCm: cm });
  [webPort, mgmtPort] = [await freePort(), await freePort()];
  repoUrl = await initRepo();
});

after(async () => {
  syncer?.stop();
  for (const p of [dataplane, operator]) {
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill("SIGTERM");
      await once(p, "exit");
    }
  }
  await argo?.stop();
  await cp?.stop();
});

test("Argo CD syncs the chart and the FHIR example to Synced/Healthy; health follows the live resources", async (t) => {
  t.after(() => t.diagnostic(waited.join("; ")));
  // The example's HMAC key, created by hand as its header says (Secrets stay out of git).
  await kubectl(["create", "namespace", NS]);
  await kubectl([
    "create",
    "secret",
    "generic",
    "fhir-jwt",
    "-n",
    NS,
    "--from-literal=hmac-secret=argocd-test-hmac-key-0123456789abcdef0123456789abcdef",
  ]);

  // The chart's Application first; the resources' Application once it is Healthy (the chart
  // README: waves do not order resources across Applications).
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify(
      application("harmony", {
        source: {
          repoURL: repoUrl,
          path: "charts/harmony",
          targetRevision: "main",
          helm: { valuesObject: { replicaCount: 0 } },
        },
        destination: { server: "https://kubernetes.default.svc", namespace: "harmony-system" },
        syncPolicy: {
          automated: { prune: true, selfHeal: true },
          syncOptions: ["CreateNamespace=true", "ServerSideApply=true"],
        },
      }),
    ),
  );

  // The operator starts once Argo CD has installed its CRDs (in a cluster: wave 0 after wave -1).
  await wait("the chart's CRDs", async () => {
    const r = await cp.kubectl([
      "get",
      "crd",
      "harmonygateways.harmony.runbeam.io",
      "harmonypipelines.harmony.runbeam.io",
    ]);
    return r.code === 0;
  });
  await wait(
    "the gateway CRD Established",
    async () =>
      (
        await cp.kubectl([
          "wait",
          "--for=condition=Established",
          "--timeout=10s",
          "crd/harmonygateways.harmony.runbeam.io",
        ])
      ).code === 0,
  );
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
      // Secrets are read on demand, never watched: a deleted or restored Secret shows at the next
      // re-check (default 60 s). Shorter here so the broken/restored steps do not wait minutes.
      "--secret-recheck-interval",
      "3s",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout!.setEncoding("utf8").on("data", (c: string) => (operatorLog += c));
  operator.stderr!.setEncoding("utf8").on("data", (c: string) => (operatorLog += c));

  const chart = await wait("the chart's Application Synced/Healthy", () => syncedHealthy("harmony"));
  assert.equal(chart.health?.status, "Healthy");

  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify(
      application("harmony-examples", {
        source: { repoURL: repoUrl, path: "apps/examples", targetRevision: "main" },
        destination: { server: "https://kubernetes.default.svc", namespace: NS },
        syncPolicy: {
          automated: { prune: true, selfHeal: true },
          retry: { limit: 10, backoff: { duration: "2s", factor: 2, maxDuration: "20s" } },
        },
      }),
    ),
  );

  // No pod serves the gateway yet: Argo CD runs health.lua on the live gateway and says Progressing.
  const progressing = await wait("the gateway Progressing", async () => {
    const h = await health("harmony-examples", "HarmonyGateway", GATEWAY);
    return h.status === "Progressing" &&
      /^WaitingForDataPlane: 0\/1 pods serving config [0-9a-f]{12}/.test(h.message ?? "")
      ? h
      : undefined;
  });
  assert.match(progressing.message!, /WaitingForDataPlane/);
  const held = (await app("harmony-examples")).status;
  const tree = async () =>
    JSON.stringify({
      gateway: await health("harmony-examples", "HarmonyGateway", GATEWAY),
      endpoint: await health("harmony-examples", "HarmonyEndpoint", "fhir-r4"),
      pipeline: await health("harmony-examples", "HarmonyPipeline", "fhir-r4"),
      operation: held?.operationState,
    });
  assert.equal(held?.health?.status, "Progressing", await tree());
  // The sync holds wave 2 until wave 1 is Healthy.
  assert.equal(held?.operationState?.phase, "Running", await tree());
  assert.notEqual((await cp.kubectl(["get", "configmap", "fhir-clients", "-n", NS])).code, 0);

  // A data plane fed the kubelet's way, and a Pod object that tells the operator where it is.
  const podDir = tempDir("harmony-argocd-pod-");
  const configDir = join(podDir, "config");
  syncer = startSyncer(
    (args) => spawn("kubectl", ["--kubeconfig", cp.kubeconfig, ...args], { env: cp.env }),
    NS,
    `${GATEWAY}-harmony-config`,
    configDir,
  );
  await wait("the first ConfigMap sync", () => Promise.resolve(syncer!.swaps() > 0));
  const secretsDir = join(podDir, "secrets");
  mkdirSync(secretsDir);
  const secret = JSON.parse(await kubectl(["get", "secret", `${GATEWAY}-harmony-secrets`, "-n", NS, "-o", "json"])) as {
    data: Record<string, string>;
  };
  for (const [k, v] of Object.entries(secret.data))
    writeFileSync(join(secretsDir, k), Buffer.from(v, "base64"), { mode: 0o600 });
  dataplane = await startDataplaneWithSecrets(join(configDir, "config.toml"));
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${GATEWAY}-pod`,
        namespace: NS,
        labels: { "harmony.runbeam.io/gateway": GATEWAY, "app.kubernetes.io/name": "harmony-dataplane" },
      },
      spec: { containers: [{ name: "dataplane", image: "harmony" }] },
    }),
  );
  await kubectl([
    "patch",
    "pod",
    `${GATEWAY}-pod`,
    "-n",
    NS,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status: POD_READY }),
  ]);

  const examples = await wait("the examples' Application Synced/Healthy", () => syncedHealthy("harmony-examples"));
  assert.equal(examples.sync?.status, "Synced");
  // The first sync attempt succeeded: a Degraded verdict on a Harmony resource during wave 1 (the
  // endpoint's Unused or the pipeline's EndpointNotFound, for the moment after they are created
  // together) would have failed it and left a retry.
  assert.ok(!examples.operationState?.retryCount, `sync retried: ${JSON.stringify(examples.operationState)}`);
  assert.equal(await kubectl(["get", "configmap", "fhir-clients", "-n", NS, "-o", "jsonpath={.data.base}"]), "/fhir");
  const gw = await health("harmony-examples", "HarmonyGateway", GATEWAY);
  assert.equal(gw.status, "Healthy");
  assert.match(gw.message!, /^1\/1 pods serving config [0-9a-f]{12}$/);
  const pipeline = await health("harmony-examples", "HarmonyPipeline", "fhir-r4");
  assert.equal(pipeline.status, "Healthy");
  assert.match(pipeline.message!, /^1\/1 pods serving the config of HarmonyGateway /);
  const endpoint = await health("harmony-examples", "HarmonyEndpoint", "fhir-r4");
  assert.equal(endpoint.status, "Healthy");
  assert.equal(endpoint.message, "used by 1 pipeline(s), 1 of them programmed");

  // No perpetual diff: a hard refresh regenerates the manifests and compares them with the live state.
  for (const name of ["harmony", "harmony-examples"]) {
    const diff = await argo.cli(["app", "diff", name, "--hard-refresh"]);
    assert.equal(
      diff.code,
      0,
      `argocd app diff ${name} --hard-refresh (exit 1 = a diff):\n${diff.stdout}\n${diff.stderr}`,
    );
    assert.equal(diff.stdout.trim(), "");
  }

  // Nor was the Application ever Degraded on the way (Argo CD records each health change it computes
  // as an Event on the Application): the transient states right after a create are Progressing.
  const events = JSON.parse(
    await kubectl([
      "get",
      "events",
      "-n",
      "argocd",
      "--field-selector",
      "involvedObject.name=harmony-examples",
      "-o",
      "json",
    ]),
  ) as { items: { message?: string }[] };
  const changes = events.items.map((e) => e.message ?? "").filter((m) => m.startsWith("Updated health status"));
  assert.ok(changes.length > 0, "no health-change Events recorded");
  assert.ok(!changes.some((m) => /-> Degraded/.test(m)), changes.join("\n"));

  // A broken resource: the Secret the pipeline references goes away.
  await kubectl(["delete", "secret", "fhir-jwt", "-n", NS]);
  const degraded = await wait("the pipeline Degraded", async () => {
    const h = await health("harmony-examples", "HarmonyPipeline", "fhir-r4");
    return h.status === "Degraded" ? h : undefined;
  });
  assert.match(degraded.message!, /^SecretNotFound: .*no Secret clinic\/fhir-jwt/);
  await wait(
    "the examples' Application Degraded",
    async () => (await app("harmony-examples")).status?.health?.status === "Degraded",
  );

  // Restored: Healthy again.
  await kubectl([
    "create",
    "secret",
    "generic",
    "fhir-jwt",
    "-n",
    NS,
    "--from-literal=hmac-secret=argocd-test-hmac-key-0123456789abcdef0123456789abcdef",
  ]);
  await wait("the pipeline Healthy again", async () => {
    const h = await health("harmony-examples", "HarmonyPipeline", "fhir-r4");
    return h.status === "Healthy" || undefined;
  });
  await wait("the examples' Application Healthy again", () => syncedHealthy("harmony-examples"));

  // Deleting the Applications with --cascade removes what they deployed, except the CRDs (keep policy).
  for (const name of ["harmony-examples", "harmony"]) {
    const del = await argo.cli(["app", "delete", name, "--cascade", "--yes"]);
    assert.equal(del.code, 0, `argocd app delete ${name}: ${del.stderr}`);
    await wait(
      `Application ${name} gone`,
      async () => (await cp.kubectl(["get", "application", name, "-n", "argocd"])).code !== 0,
    );
  }
  assert.notEqual((await cp.kubectl(["get", "harmonygateway", GATEWAY, "-n", NS])).code, 0);
  assert.notEqual((await cp.kubectl(["get", "deployment", "harmony", "-n", "harmony-system"])).code, 0);
  const crds = await kubectl(["get", "crd", "-o", "name"]);
  for (const kind of ["harmonygateways", "harmonyendpoints", "harmonypipelines"]) {
    assert.match(crds, new RegExp(`customresourcedefinition.apiextensions.k8s.io/${kind}.harmony.runbeam.io`));
  }
});
