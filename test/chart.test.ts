/**
 * charts/harmony with the real helm and kubectl, against a real kube-apiserver (test/controlplane):
 * lint, what `helm template` renders (security settings, probes, labels, CRDs and RBAC per watch
 * mode, the optional monitoring objects), the kustomize base as the same install, then `helm
 * install` and `helm upgrade` into the API server with the operator running as the chart's own
 * ServiceAccount (a bearer token from `kubectl create token`), with the arguments of the chart's
 * Deployment. The operator reconciling a gateway, a pipeline, a Secret reference, Deployments,
 * Services, Events and its Lease without one `forbidden` proves the RBAC is enough; `kubectl auth
 * can-i` proves it is not more. No kubelet runs, so the Deployment's pod is this local process.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { startControlPlane, freePort, type ControlPlane, type KubectlResult } from "./controlplane/controlplane.js";
import { ROOT, sleep } from "../dataplane/test/helpers.js";

const CHART = join(ROOT, "charts/harmony");
const RELEASE = "harmony";
const RELEASE_NS = "harmony-system";
const SA = `system:serviceaccount:${RELEASE_NS}:${RELEASE}`;
const KINDS = ["HarmonyEndpoint", "HarmonyGateway", "HarmonyPipeline"];

let cp: ControlPlane;
let work: string;
let operator: ChildProcess | undefined;
let operatorLog = "";

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    generation?: number;
  };
  [k: string]: unknown;
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Container {
  name: string;
  args: string[];
  env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string | number } };
  readinessProbe: { httpGet: { path: string; port: string | number } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string }[];
}
interface Deployment extends Obj {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        serviceAccountName: string;
        securityContext: Record<string, unknown>;
        containers: Container[];
        volumes: { name: string; emptyDir?: object }[];
      };
    };
  };
}
type Cond = { type: string; status: string; reason: string; message: string };

function run(cmd: string, args: string[], env = cp.env): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    p.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const helmRaw = (args: string[]) => run(join(cp.binDir, "helm"), args);
async function helm(args: string[]): Promise<string> {
  const r = await helmRaw(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(" ")} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, "-o", "json"])) as T;

function docs(yamlText: string): Obj[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/** `helm template` of the chart with `--set` pairs (values that are lists use `{a,b}`). */
async function render(...sets: string[]): Promise<Obj[]> {
  return docs(
    await helm(["template", RELEASE, CHART, "--namespace", RELEASE_NS, ...sets.flatMap((s) => ["--set", s])]),
  );
}
const find = <T extends Obj = Obj>(objs: Obj[], kind: string, name?: string, ns?: string): T | undefined =>
  objs.find(
    (o) =>
      o.kind === kind &&
      (name === undefined || o.metadata.name === name) &&
      (ns === undefined || o.metadata.namespace === ns),
  ) as T | undefined;
const all = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const kindNames = (objs: Obj[]) => objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();

async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error(
    `timed out waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ""}\noperator log:\n${operatorLog.slice(-4000)}`,
  );
}

async function condition(kind: string, ns: string, name: string, type: string) {
  const o = await getJson<{
    status?: { conditions?: Cond[]; observedGeneration?: number };
    metadata: { generation: number };
  }>(["get", kind, name, "-n", ns]);
  return {
    c: o.status?.conditions?.find((c) => c.type === type),
    current: o.status?.observedGeneration === o.metadata.generation,
  };
}
const conditionIs = (kind: string, ns: string, name: string, type: string, status: string) =>
  eventually(`${kind} ${ns}/${name} ${type}=${status}`, async () => {
    const r = await condition(kind, ns, name, type);
    return r.current && r.c?.status === status ? r.c : undefined;
  });

/** `kubectl auth can-i` as the operator, with the operator's own token (no impersonation). */
async function can(kubeconfig: string, ...args: string[]): Promise<boolean> {
  const r = await run("kubectl", ["--kubeconfig", kubeconfig, "auth", "can-i", ...args]);
  if (r.code !== 0 && !/^no/m.test(r.stdout)) throw new Error(`kubectl auth can-i ${args.join(" ")}: ${r.stderr}`);
  return r.code === 0;
}

let saKubeconfig = "";

/** A kubeconfig that authenticates with a token of the chart's ServiceAccount, as the pod would. */
async function serviceAccountKubeconfig(): Promise<string> {
  const token = (await kubectl(["create", "token", RELEASE, "-n", RELEASE_NS, "--duration=1h"])).trim();
  const file = join(work, "sa-kubeconfig");
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "harmony-test",
          cluster: { server: cp.server, "certificate-authority-data": Buffer.from(cp.caPem).toString("base64") },
        },
      ],
      users: [{ name: "harmony-operator", user: { token } }],
      contexts: [{ name: "sa", context: { cluster: "harmony-test", user: "harmony-operator", namespace: RELEASE_NS } }],
      "current-context": "sa",
    }),
    { mode: 0o600 },
  );
  return file;
}

/**
 * Starts the operator the way the installed Deployment would: its container args (with `$(VAR)`
 * expanded from the container env, as the kubelet does) plus a kubeconfig, since no service-account
 * volume is mounted outside a pod.
 */
async function startOperatorFromDeployment(): Promise<number> {
  await stopOperator();
  const d = await getJson<Deployment>(["get", "deployment", RELEASE, "-n", RELEASE_NS]);
  const c = d.spec.template.spec.containers[0]!;
  const env: Record<string, string> = {};
  for (const e of c.env) {
    if (e.valueFrom?.fieldRef?.fieldPath === "metadata.namespace") env[e.name] = RELEASE_NS;
  }
  const args = c.args.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m));
  const healthPort = c.ports.find((p) => p.name === "health")!.containerPort;
  operatorLog = "";
  operator = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "operator/src/main.ts"), ...args, "--kubeconfig", saKubeconfig],
    { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout!.setEncoding("utf8").on("data", (s: string) => (operatorLog += s));
  operator.stderr!.setEncoding("utf8").on("data", (s: string) => (operatorLog += s));
  // The kubelet's probes, on the paths and port the Deployment names.
  for (const probe of [c.livenessProbe, c.readinessProbe]) {
    assert.equal(probe.httpGet.port, "health");
    await eventually(`operator ${probe.httpGet.path}`, async () => {
      if (operator?.exitCode !== null) throw new Error(`operator exited (${operator?.exitCode})`);
      const r = await fetch(`http://127.0.0.1:${healthPort}${probe.httpGet.path}`);
      return r.status === 200;
    });
  }
  return healthPort;
}

async function stopOperator(): Promise<void> {
  if (operator && operator.exitCode === null && operator.signalCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  operator = undefined;
}

/** What must never appear in the log of an operator whose RBAC is sufficient. */
function assertNoAccessErrors(): void {
  assert.doesNotMatch(
    operatorLog,
    /forbidden|Unauthorized|Watch failed|Event not recorded|Reconcile failed/i,
    operatorLog,
  );
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "harmony-chart-"));
  cp = await startControlPlane();
});

after(async () => {
  await stopOperator();
  await cp?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test("helm lint --strict passes, with the defaults and with every option on", async () => {
  await helm(["lint", "--strict", CHART]);
  await helm([
    "lint",
    "--strict",
    CHART,
    "--set",
    "operator.watchNamespaces={a,b}",
    "--set",
    "podDisruptionBudget.enabled=true,metrics.serviceMonitor.enabled=true,metrics.dataplanePodMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true,grafanaDashboard.enabled=true,operator.manageWorkloads=false",
  ]);
});

test("values.schema.json refuses values the chart cannot use", async () => {
  for (const [set, complaint] of [
    ["operator.logLevel=verbose", /operator\.logLevel/],
    ["replicas=2", /additional properties 'replicas' not allowed|replicas/],
    ["operator.watchNamespaces={Not_A_Namespace}", /watchNamespaces/],
    ["operator.relistInterval=often", /relistInterval/],
  ] as const) {
    const r = await helmRaw(["template", RELEASE, CHART, "--set", set]);
    assert.notEqual(r.code, 0, `--set ${set} was accepted`);
    assert.match(r.stderr, complaint);
  }
});

test("helm template: the operator Deployment is locked down, probed on its health port and labelled", async () => {
  const objs = await render();
  assert.deepEqual(kindNames(objs), [
    "ClusterRole/harmony",
    "ClusterRoleBinding/harmony",
    "CustomResourceDefinition/harmonyendpoints.harmony.runbeam.io",
    "CustomResourceDefinition/harmonygateways.harmony.runbeam.io",
    "CustomResourceDefinition/harmonypipelines.harmony.runbeam.io",
    "Deployment/harmony",
    "Role/harmony-leader-election",
    "RoleBinding/harmony-leader-election",
    "Service/harmony-metrics",
    "ServiceAccount/harmony",
  ]);
  const d = find<Deployment>(objs, "Deployment")!;
  const pod = d.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
  const c = pod.containers[0]!;
  assert.equal(c.securityContext.runAsNonRoot, true);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext.capabilities, { drop: ["ALL"] });
  assert.deepEqual(c.securityContext.seccompProfile, { type: "RuntimeDefault" });
  // A read-only root filesystem still needs a writable /tmp.
  assert.ok(c.volumeMounts.some((m) => m.mountPath === "/tmp" && pod.volumes.find((v) => v.name === m.name)?.emptyDir));
  assert.ok(c.resources.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory);

  // Probes hit the operator's health server: the named port is the one --health-port opens.
  const health = c.ports.find((p) => p.name === "health")!;
  assert.ok(c.args.includes(`--health-port=${health.containerPort}`));
  assert.deepEqual(c.livenessProbe.httpGet, { path: "/healthz", port: "health" });
  assert.deepEqual(c.readinessProbe.httpGet, { path: "/readyz", port: "health" });
  assert.ok(c.args.includes("--leader-elect=true"));
  assert.ok(c.args.includes("--lease-namespace=$(POD_NAMESPACE)"));
  assert.equal(c.env.find((e) => e.name === "POD_NAMESPACE")?.valueFrom?.fieldRef?.fieldPath, "metadata.namespace");
  assert.ok(!c.args.some((a) => a.startsWith("--watch-namespaces")));

  // Standard labels on everything; selectors only on the immutable name + instance pair.
  for (const o of objs) {
    const l = o.metadata.labels ?? {};
    assert.equal(l["app.kubernetes.io/name"], "harmony", `${o.kind}/${o.metadata.name}`);
    assert.equal(l["app.kubernetes.io/instance"], RELEASE, `${o.kind}/${o.metadata.name}`);
    assert.equal(l["app.kubernetes.io/managed-by"], "Helm", `${o.kind}/${o.metadata.name}`);
    assert.equal(l["app.kubernetes.io/version"], "0.1.0", `${o.kind}/${o.metadata.name}`);
    assert.equal(l["helm.sh/chart"], "harmony-0.1.0", `${o.kind}/${o.metadata.name}`);
  }
  assert.deepEqual(d.spec.selector.matchLabels, {
    "app.kubernetes.io/name": "harmony",
    "app.kubernetes.io/instance": RELEASE,
  });
  for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) assert.equal(d.spec.template.metadata.labels[k], v);
  const svc = find(objs, "Service") as Obj & {
    spec: { selector: Record<string, string>; ports: { name: string; targetPort: string }[] };
  };
  assert.deepEqual(svc.spec.selector, d.spec.selector.matchLabels);
  assert.deepEqual(
    svc.spec.ports.map((p) => [p.name, p.targetPort]),
    [["metrics", "health"]],
  );
  assert.equal(pod.serviceAccountName, find(objs, "ServiceAccount")!.metadata.name);
  const commonLabelled = await render("commonLabels.team=imaging");
  for (const o of commonLabelled) assert.equal(o.metadata.labels?.team, "imaging", `${o.kind}/${o.metadata.name}`);
});

test("helm template: the CRDs are crds/*.yaml, kept on uninstall, and can be left out", async () => {
  const crds = all(await render(), "CustomResourceDefinition") as (Obj & { spec: unknown })[];
  const sources = readdirSync(join(ROOT, "crds"))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => parse(readFileSync(join(ROOT, "crds", f), "utf8")) as Obj & { spec: unknown });
  assert.equal(crds.length, sources.length);
  for (const src of sources) {
    const crd = crds.find((c) => c.metadata.name === src.metadata.name);
    assert.ok(crd, `${src.metadata.name} not rendered`);
    assert.deepEqual(crd.spec, src.spec, `${src.metadata.name}: the chart's spec differs from crds/`);
    for (const [k, v] of Object.entries(src.metadata.labels ?? {})) assert.equal(crd.metadata.labels?.[k], v);
    assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], "keep");
    assert.equal(crd.metadata.annotations?.["argocd.argoproj.io/sync-wave"], "-1");
  }
  assert.equal(all(await render("crds.enabled=false"), "CustomResourceDefinition").length, 0);
  for (const crd of all(await render("crds.keep=false"), "CustomResourceDefinition"))
    assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], undefined);
});

test("helm template: RBAC is cluster-wide by default and per namespace with watchNamespaces, least privilege", async () => {
  const cluster = await render();
  const clusterRules = (find(cluster, "ClusterRole") as Obj & { rules: Rule[] }).rules;
  const binding = find(cluster, "ClusterRoleBinding") as Obj & {
    roleRef: { kind: string; name: string };
    subjects: { kind: string; name: string; namespace: string }[];
  };
  assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "harmony" });
  assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: RELEASE, namespace: RELEASE_NS }]);

  const verbsFor = (rules: Rule[], group: string, resource: string) =>
    rules
      .filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource))
      .flatMap((r) => r.verbs)
      .sort();
  assert.deepEqual(verbsFor(clusterRules, "harmony.runbeam.io", "harmonygateways"), ["get", "list", "watch"]);
  assert.deepEqual(verbsFor(clusterRules, "harmony.runbeam.io", "harmonypipelines/status"), ["patch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "secrets"), ["create", "list", "patch", "watch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "configmaps"), ["create", "list", "patch", "watch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "pods"), ["list", "watch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "events"), ["create"]);
  assert.deepEqual(verbsFor(clusterRules, "apps", "deployments"), ["create", "get", "patch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "services"), ["create", "get", "patch"]);
  for (const r of clusterRules) {
    assert.ok(!r.verbs.includes("*") && !r.resources.includes("*") && !r.apiGroups.includes("*"), JSON.stringify(r));
    assert.ok(!r.verbs.some((v) => ["delete", "deletecollection", "escalate", "bind", "impersonate"].includes(v)));
    assert.ok(!r.resources.some((x) => x.startsWith("pods/") || x === "customresourcedefinitions"));
  }
  const lease = find(cluster, "Role", "harmony-leader-election", RELEASE_NS) as Obj & { rules: Rule[] };
  assert.deepEqual(lease.rules, [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      resourceNames: ["harmony-operator"],
      verbs: ["get", "update"],
    },
  ]);

  const scoped = await render("operator.watchNamespaces={clinic,radiology}");
  assert.equal(find(scoped, "ClusterRole"), undefined);
  assert.equal(find(scoped, "ClusterRoleBinding"), undefined);
  for (const ns of ["clinic", "radiology"]) {
    const role = find(scoped, "Role", "harmony", ns) as Obj & { rules: Rule[] };
    assert.ok(role, `no Role in ${ns}`);
    assert.deepEqual(role.rules, clusterRules, `the Role in ${ns} grants what the ClusterRole would`);
    const rb = find(scoped, "RoleBinding", "harmony", ns) as Obj & { roleRef: { kind: string } };
    assert.equal(rb.roleRef.kind, "Role");
  }
  const args = find<Deployment>(scoped, "Deployment")!.spec.template.spec.containers[0]!.args;
  assert.ok(args.includes("--watch-namespaces=clinic,radiology"));

  // Config only: nothing on Deployments or Services.
  const configOnly = (find(await render("operator.manageWorkloads=false"), "ClusterRole") as Obj & { rules: Rule[] })
    .rules;
  assert.ok(!configOnly.some((r) => r.resources.includes("deployments") || r.resources.includes("services")));
  const noElection = await render("operator.leaderElection.enabled=false");
  assert.equal(find(noElection, "Role"), undefined);
  assert.ok(
    find<Deployment>(noElection, "Deployment")!.spec.template.spec.containers[0]!.args.includes("--leader-elect=false"),
  );
});

test("helm template: monitoring, PDB and dashboard are off by default and render from files/ when on", async () => {
  const defaults = await render();
  for (const kind of ["ServiceMonitor", "PodMonitor", "PrometheusRule", "PodDisruptionBudget", "ConfigMap"])
    assert.equal(find(defaults, kind), undefined, `${kind} rendered by default`);
  const on = await render(
    "metrics.serviceMonitor.enabled=true,metrics.dataplanePodMonitor.enabled=true,metrics.prometheusRule.enabled=true",
    "metrics.prometheusRule.labels.release=prom,grafanaDashboard.enabled=true,podDisruptionBudget.enabled=true",
  );
  const rule = find(on, "PrometheusRule") as Obj & { spec: unknown };
  assert.deepEqual(rule.spec, parse(readFileSync(join(CHART, "files/prometheus-rules.yaml"), "utf8")));
  assert.equal(rule.metadata.labels?.release, "prom");
  const dash = find(on, "ConfigMap") as Obj & { data: Record<string, string> };
  assert.equal(dash.metadata.labels?.grafana_dashboard, "1");
  assert.deepEqual(
    JSON.parse(dash.data["harmony.json"]!),
    JSON.parse(readFileSync(join(CHART, "files/grafana-dashboard.json"), "utf8")),
  );
  const sm = find(on, "ServiceMonitor") as Obj & {
    spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
  };
  const svc = find(on, "Service") as Obj & { spec: { selector: Record<string, string>; ports: { name: string }[] } };
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels?.[k], v);
  assert.equal(sm.spec.endpoints[0]!.port, svc.spec.ports[0]!.name);
  assert.equal(sm.spec.endpoints[0]!.path, "/metrics");
  // The data-plane pods the operator runs (operator/src/translator/workload.ts) carry these labels
  // and a container port named "management".
  const pm = find(on, "PodMonitor") as Obj & {
    spec: { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string }[] };
  };
  assert.deepEqual(pm.spec.selector.matchLabels, {
    "app.kubernetes.io/name": "harmony-dataplane",
    "app.kubernetes.io/managed-by": "harmony-operator",
  });
  assert.equal(pm.spec.podMetricsEndpoints[0]!.port, "management");
  const pdb = find(on, "PodDisruptionBudget") as Obj & { spec: Record<string, unknown> };
  assert.equal(pdb.apiVersion, "policy/v1");
  assert.equal(pdb.spec.maxUnavailable, 1);
  assert.equal(pdb.spec.minAvailable, undefined);
  const pdb2 = find(
    await render("podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=1"),
    "PodDisruptionBudget",
  );
  assert.deepEqual((pdb2 as Obj & { spec: Record<string, unknown> }).spec.minAvailable, 1);
  assert.equal((pdb2 as Obj & { spec: Record<string, unknown> }).spec.maxUnavailable, undefined);
});

test("deploy/kustomize/base is the chart's default install, regenerated without a difference", async () => {
  const out = join(work, "kustomize-base");
  const gen = await run("bash", [join(ROOT, "deploy/kustomize/generate.sh"), out], {
    ...cp.env,
    HELM: join(cp.binDir, "helm"),
  });
  assert.equal(gen.code, 0, gen.stderr);
  for (const f of ["crds.yaml", "rbac.yaml", "operator.yaml"]) {
    assert.equal(
      readFileSync(join(out, f), "utf8"),
      readFileSync(join(ROOT, "deploy/kustomize/base", f), "utf8"),
      `deploy/kustomize/base/${f} is stale: run bash deploy/kustomize/generate.sh`,
    );
  }
  const built = docs(await kubectl(["kustomize", join(ROOT, "deploy/kustomize/base")]));
  const chart = await render();
  assert.deepEqual(kindNames(built), kindNames(chart));
  for (const o of built) {
    const twin = find(chart, o.kind, o.metadata.name)!;
    assert.equal(o.metadata.namespace, twin.metadata.namespace, `${o.kind}/${o.metadata.name}`);
    assert.equal(o.metadata.labels?.["app.kubernetes.io/managed-by"], "kustomize");
    if (o.kind === "CustomResourceDefinition") assert.deepEqual(o.spec, twin.spec);
  }
});

test("helm install: the operator runs as the chart's ServiceAccount and reconciles with nothing forbidden", async () => {
  const healthPort = await freePort();
  await helm([
    "install",
    RELEASE,
    CHART,
    "--namespace",
    RELEASE_NS,
    "--create-namespace",
    "--set",
    `operator.healthPort=${healthPort}`,
  ]);
  await kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    ...KINDS.map((k) => `crd/${k.toLowerCase()}s.harmony.runbeam.io`),
  ]);
  saKubeconfig = await serviceAccountKubeconfig();
  assert.equal(await startOperatorFromDeployment(), healthPort);
  const lease = await eventually("the leader Lease", async () => {
    const l = await getJson<{ spec: { holderIdentity?: string } }>([
      "get",
      "lease",
      "harmony-operator",
      "-n",
      RELEASE_NS,
    ]);
    return l.spec.holderIdentity;
  });
  assert.ok(lease);

  const ns = "clinic";
  await kubectl(["create", "namespace", ns]);
  const items = [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "upstream-auth", namespace: ns },
      stringData: { token: "t0k3n" },
    },
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyGateway",
      metadata: { name: "edge", namespace: ns },
      spec: { networks: [{ name: "web", port: 8080 }] },
    },
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyEndpoint",
      metadata: { name: "api", namespace: ns },
      spec: { service: "http", pathPrefix: "/api" },
    },
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyPipeline",
      metadata: { name: "api", namespace: ns },
      spec: {
        gatewayRef: { name: "edge" },
        endpoints: [{ name: "api" }],
        middleware: [
          {
            name: "hook",
            type: "webhook",
            options: { endpoint: "http://audit.clinic.svc:8080/events", auth_type: "bearer" },
            secretOptions: [{ option: "token", secretKeyRef: { name: "upstream-auth", key: "token" } }],
          },
        ],
        backends: [{ service: "http", url: "http://backend.clinic.svc:8080" }],
      },
    },
  ];
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));

  const cm = await eventually("the gateway's ConfigMap with the pipeline", async () => {
    const c = await getJson<{ data: Record<string, string> }>(["get", "configmap", "edge-harmony-config", "-n", ns]);
    return c.data["pipeline.clinic.api.toml"] ? c : undefined;
  });
  assert.match(cm.data["pipeline.clinic.api.toml"]!, /path_prefix = "\/api"/);
  await conditionIs("harmonygateway", ns, "edge", "Accepted", "True");
  await conditionIs("harmonygateway", ns, "edge", "Programmed", "True");
  await conditionIs("harmonypipeline", ns, "api", "Accepted", "True");
  await conditionIs("harmonypipeline", ns, "api", "ResolvedRefs", "True");
  await conditionIs("harmonypipeline", ns, "api", "Programmed", "True");
  await conditionIs("harmonyendpoint", ns, "api", "Ready", "True");
  // No kubelet runs the data plane, so the gateway is Programmed but waits for pods to serve it.
  const ready = await conditionIs("harmonygateway", ns, "edge", "Ready", "False");
  assert.equal(ready.reason, "WaitingForDataPlane");
  // What only workloads and Secret references need: a Secret, a Deployment, a Service, Events.
  const secret = await getJson<{ data: Record<string, string> }>(["get", "secret", "edge-harmony-secrets", "-n", ns]);
  assert.deepEqual(
    Object.values(secret.data).map((v) => Buffer.from(v, "base64").toString()),
    ["t0k3n"],
  );
  await eventually("the data plane's Deployment and Service", async () => {
    await kubectl(["get", "deployment/edge-harmony", "service/edge-harmony", "-n", ns]);
    return true;
  });
  const events = await getJson<{ items: { source?: { component?: string } }[] }>(["get", "events", "-n", ns]);
  assert.ok(events.items.some((e) => e.source?.component === "harmony-operator"));
  assertNoAccessErrors();
});

test("examples/kubernetes pass a server-side dry run, and the operator accepts them", async () => {
  const ns = "examples";
  await kubectl(["create", "namespace", ns]);
  const dir = join(ROOT, "examples/kubernetes");
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  assert.deepEqual(files.sort(), [
    "dicom-modality-bridge.yaml",
    "dicomweb-gateway.yaml",
    "fhir-gateway.yaml",
    "jmix-export.yaml",
  ]);
  for (const f of files) {
    const out = await kubectl(["apply", "--dry-run=server", "-n", ns, "-f", join(dir, f)]);
    const objs = docs(readFileSync(join(dir, f), "utf8"));
    for (const o of objs) {
      assert.equal(o.metadata.namespace, undefined, `${f}: ${o.kind}/${o.metadata.name} names a namespace`);
      assert.match(out, new RegExp(`${o.metadata.name} created \\(server dry run\\)`), `${f}: ${out}`);
    }
  }
  // Applied for real, with the Secrets their READMEs ask for, the operator (still running as the
  // ServiceAccount) takes every resource as valid data-plane config.
  await kubectl(["create", "secret", "generic", "fhir-jwt", "-n", ns, `--from-literal=hmac-secret=${"k".repeat(48)}`]);
  const signingKey = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" });
  writeFileSync(join(work, "signing-key.pem"), signingKey);
  await kubectl([
    "create",
    "secret",
    "generic",
    "jmix-signing",
    "-n",
    ns,
    `--from-file=${join(work, "signing-key.pem")}`,
  ]);
  for (const f of files) {
    await kubectl(["apply", "--server-side", "-n", ns, "-f", join(dir, f)]);
    for (const o of docs(readFileSync(join(dir, f), "utf8"))) {
      const kind = o.kind.toLowerCase();
      const accepted = await eventually(`${f}: ${o.kind}/${o.metadata.name} has an Accepted condition`, async () => {
        const r = await condition(kind, ns, o.metadata.name, "Accepted");
        return r.current ? r.c : undefined;
      });
      assert.equal(
        accepted.status,
        "True",
        `${f}: ${o.kind}/${o.metadata.name}: ${accepted.reason}: ${accepted.message}`,
      );
      if (o.kind === "HarmonyPipeline") await conditionIs(kind, ns, o.metadata.name, "Programmed", "True");
    }
  }
  assertNoAccessErrors();
});

test("kubectl auth can-i: the ServiceAccount may do what the operator does and nothing it must not", async () => {
  const kc = saKubeconfig;
  assert.equal(await can(kc, "list", "secrets", "--all-namespaces"), true);
  assert.equal(
    await can(kc, "patch", "harmonygateways.harmony.runbeam.io", "--subresource=status", "-n", "clinic"),
    true,
  );
  assert.equal(await can(kc, "create", "deployments.apps", "-n", "clinic"), true);
  assert.equal(await can(kc, "update", "leases.coordination.k8s.io/harmony-operator", "-n", RELEASE_NS), true);
  for (const denied of [
    ["delete", "customresourcedefinitions.apiextensions.k8s.io"],
    ["create", "customresourcedefinitions.apiextensions.k8s.io"],
    ["create", "pods", "--subresource=exec", "-n", "clinic"],
    ["create", "pods", "-n", "clinic"],
    ["get", "secrets", "-n", "clinic"],
    ["delete", "secrets", "-n", "clinic"],
    ["delete", "configmaps", "-n", "clinic"],
    ["update", "harmonygateways.harmony.runbeam.io", "-n", "clinic"],
    ["delete", "harmonygateways.harmony.runbeam.io", "-n", "clinic"],
    ["delete", "deployments.apps", "-n", "clinic"],
    ["create", "clusterrolebindings.rbac.authorization.k8s.io"],
    ["escalate", "clusterroles.rbac.authorization.k8s.io"],
    ["impersonate", "users"],
    ["get", "nodes"],
    ["create", "leases.coordination.k8s.io", "-n", "clinic"],
    ["update", "leases.coordination.k8s.io/someone-else", "-n", RELEASE_NS],
  ]) {
    assert.equal(await can(kc, ...denied), false, `can-i ${denied.join(" ")} should be no`);
  }
  // The same answers for the identity the chart binds, asked by the admin through impersonation.
  assert.equal(
    (await cp.kubectl(["auth", "can-i", "create", "pods", "--subresource=exec", `--as=${SA}`, "-n", "clinic"])).code,
    1,
  );
});

test("helm upgrade to watchNamespaces: Roles replace the ClusterRole, and the operator still reconciles", async () => {
  const d = await getJson<Deployment>(["get", "deployment", RELEASE, "-n", RELEASE_NS]);
  const healthPort = d.spec.template.spec.containers[0]!.ports[0]!.containerPort;
  await helm([
    "upgrade",
    RELEASE,
    CHART,
    "--namespace",
    RELEASE_NS,
    "--set",
    `operator.healthPort=${healthPort}`,
    "--set",
    "operator.watchNamespaces={clinic}",
  ]);
  assert.notEqual((await cp.kubectl(["get", "clusterrole", RELEASE])).code, 0, "the ClusterRole outlived the upgrade");
  assert.notEqual((await cp.kubectl(["get", "clusterrolebinding", RELEASE])).code, 0);
  await kubectl(["get", "role", RELEASE, "-n", "clinic"]);
  await kubectl(["get", "rolebinding", RELEASE, "-n", "clinic"]);

  const kc = saKubeconfig;
  assert.equal(await can(kc, "list", "secrets", "-n", "clinic"), true);
  assert.equal(
    await can(kc, "patch", "harmonypipelines.harmony.runbeam.io", "--subresource=status", "-n", "clinic"),
    true,
  );
  assert.equal(await can(kc, "list", "secrets", "-n", "examples"), false);
  assert.equal(await can(kc, "list", "secrets", "-n", "kube-system"), false);
  assert.equal(await can(kc, "list", "secrets", "--all-namespaces"), false);
  assert.equal(await can(kc, "list", "harmonygateways.harmony.runbeam.io", "--all-namespaces"), false);
  assert.equal(
    await can(kc, "patch", "harmonygateways.harmony.runbeam.io", "--subresource=status", "-n", "examples"),
    false,
  );
  assert.equal(await can(kc, "list", "pods", "-n", "examples"), false);

  await startOperatorFromDeployment();
  assert.match(operatorLog, /"watch_namespaces":\["clinic"\]/);
  await kubectl([
    "patch",
    "harmonyendpoint",
    "api",
    "-n",
    "clinic",
    "--type=merge",
    "-p",
    JSON.stringify({ spec: { pathPrefix: "/v2" } }),
  ]);
  await eventually("the ConfigMap with the new path", async () => {
    const c = await getJson<{ data: Record<string, string> }>([
      "get",
      "configmap",
      "edge-harmony-config",
      "-n",
      "clinic",
    ]);
    return /path_prefix = "\/v2"/.test(c.data["pipeline.clinic.api.toml"] ?? "");
  });
  await conditionIs("harmonyendpoint", "clinic", "api", "Accepted", "True");
  await conditionIs("harmonygateway", "clinic", "edge", "Programmed", "True");
  assertNoAccessErrors();
});

test("helm uninstall keeps the CRDs and the resources, and removes the operator's access", async () => {
  await stopOperator();
  await helm(["uninstall", RELEASE, "--namespace", RELEASE_NS]);
  for (const k of KINDS) await kubectl(["get", "crd", `${k.toLowerCase()}s.harmony.runbeam.io`]);
  await kubectl(["get", "harmonygateway", "edge", "-n", "clinic"]);
  assert.notEqual((await cp.kubectl(["get", "role", RELEASE, "-n", "clinic"])).code, 0);
  assert.notEqual((await cp.kubectl(["get", "serviceaccount", RELEASE, "-n", RELEASE_NS])).code, 0);
});
