/**
 * charts/harmony with the real helm and kubectl, against a real kube-apiserver (test/controlplane):
 * lint, what `helm template` renders (security settings, probes, labels, CRDs and RBAC per watch
 * mode, the optional monitoring objects), the kustomize base as the same install, then `helm
 * install` and `helm upgrade` into the API server with the operator running as the chart's own
 * ServiceAccount (a bearer token from `kubectl create token`), with the arguments of the chart's
 * Deployment. The operator reconciling a gateway, a pipeline, a Secret reference, Deployments,
 * Services, Events and its Lease without one `forbidden` proves the RBAC is enough; `kubectl auth
 * can-i` proves it is not more. No kubelet runs, so the Deployment's pod is this local process.
 * With `webhook.enabled` the same ServiceAccount creates the sidecar webhook's certificate Secret and
 * MutatingWebhookConfiguration, and the API server calls the webhook (at a loopback URL, as no
 * Service routes to this process) to inject the data plane into a labelled pod.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { startControlPlane, freePort, type ControlPlane, type KubectlResult } from "./controlplane/controlplane.js";
import { ROOT, eventually as poll, run as runCommand } from "../dataplane/test/helpers.js";
import { WEBHOOK_FLAGS, webhookSettings } from "../operator/src/webhook/flags.js";
import { parseLabelSelector, webhookConfiguration } from "../operator/src/webhook/config.js";
import { writeKubeconfig } from "./kubeconfig.js";

const CHART = join(ROOT, "charts/harmony");
const RELEASE = "harmony";
const RELEASE_NS = "harmony-system";
const SA = `system:serviceaccount:${RELEASE_NS}:${RELEASE}`;
const KINDS = ["HarmonyEndpoint", "HarmonyGateway", "HarmonyNetwork", "HarmonyPipeline"];
/** The names the chart gives the webhook's objects (release "harmony": fullname "harmony"). */
const WEBHOOK_CONFIG = `${RELEASE}-sidecar-injector`;
const WEBHOOK_SECRET = `${RELEASE}-webhook-cert`;
const WEBHOOK_SERVICE = `${RELEASE}-webhook`;
const VALIDATOR = `${RELEASE}-validator`;
const GATEWAY_LABEL = "harmony.runbeam.io/gateway";
const SIDECAR = "harmony-dataplane";

let cp: ControlPlane;
let work: string;
let operator: ChildProcess | undefined;
let operatorLog = "";
/** Container port of the webhook while the release has webhook.enabled (0: not yet). */
let webhookPort = 0;

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
interface Pod {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: {
    containers: { name: string; image?: string }[];
    initContainers?: { name: string; restartPolicy?: string }[];
    volumes?: { name: string; emptyDir?: object }[];
  };
}
interface WebhookConfiguration extends Obj {
  webhooks: {
    name: string;
    failurePolicy: string;
    clientConfig: { url?: string; service?: unknown; caBundle?: string };
    namespaceSelector?: unknown;
  }[];
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

const run = (cmd: string, args: string[], env = cp.env): Promise<KubectlResult> => runCommand(cmd, args, { env });

const helmRaw = (args: string[]) => run(join(cp.binDir, "helm"), args);
async function helm(args: string[]): Promise<string> {
  const r = await helmRaw(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(" ")} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

/** helm upgrade with `sets`, keeping the operator's health port (the tests run it outside the cluster on that port). */
async function upgradeKeepingHealthPort(sets: string[]): Promise<string> {
  const d = await getJson<Deployment>(["get", "deployment", RELEASE, "-n", RELEASE_NS]);
  const healthPort = d.spec.template.spec.containers[0]!.ports.find((p) => p.name === "health")!.containerPort;
  if ((await cp.kubectl(["get", "mutatingwebhookconfiguration", WEBHOOK_CONFIG])).code === 0)
    await routeWebhook("service");
  const args = ["upgrade", RELEASE, CHART, "--namespace", RELEASE_NS, "--set", `operator.healthPort=${healthPort}`];
  for (const set of sets) args.push("--set", set);
  return helm(args);
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

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> =>
  poll(what, fn, { timeoutMs, intervalMs: 250, context: () => `operator log:\n${operatorLog.slice(-4000)}` });

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
  return writeKubeconfig(join(work, "sa-kubeconfig"), {
    server: cp.server,
    caPem: cp.caPem,
    token,
    namespace: RELEASE_NS,
  });
}

/**
 * Starts the operator the way the installed Deployment would: its container args (with `$(VAR)`
 * expanded from the container env, as the kubelet does) plus a kubeconfig, since no service-account
 * volume is mounted outside a pod.
 */
async function startOperatorFromDeployment(extraArgs: string[] = []): Promise<number> {
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
    ["--import", "tsx", join(ROOT, "operator/src/main.ts"), ...args, ...extraArgs, "--kubeconfig", saKubeconfig],
    { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout!.setEncoding("utf8").on("data", (s: string) => (operatorLog += s));
  operator.stderr!.setEncoding("utf8").on("data", (s: string) => (operatorLog += s));
  // An operator that exits fails the start at once rather than after the probes' timeout.
  const exited = once(operator, "exit").then(([code]) => {
    throw new Error(`operator exited (${String(code)})`);
  });
  exited.catch(() => undefined);
  // The kubelet's probes, on the paths and port the Deployment names.
  for (const probe of [c.livenessProbe, c.readinessProbe]) {
    assert.equal(probe.httpGet.port, "health");
    await Promise.race([
      exited,
      eventually(`operator ${probe.httpGet.path}`, async () => {
        if (operator?.exitCode !== null) throw new Error(`operator exited (${operator?.exitCode})`);
        const r = await fetch(`http://127.0.0.1:${healthPort}${probe.httpGet.path}`);
        return r.status === 200;
      }),
    ]);
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

/**
 * The chart's --webhook-* arguments as the operator parses them (operator/src/webhook/flags.ts), with
 * $(POD_NAMESPACE) expanded as the kubelet would: a misspelt flag or a value the operator refuses
 * fails here, not at the operator's start in a cluster.
 */
function chartWebhookSettings(args: string[]) {
  const flags: Record<string, string> = {};
  for (const a of args.filter((x) => x.startsWith("--webhook-") || x.startsWith("--validating-"))) {
    const m = /^--([a-z-]+)=(.*)$/s.exec(a);
    assert.ok(m, `${a}: not --flag=value`);
    assert.ok(m[1]! in WEBHOOK_FLAGS, `${a}: the operator has no --${m[1]} flag`);
    assert.equal(flags[m[1]!], undefined, `${a}: given twice`);
    flags[m[1]!] = m[2]!.replaceAll("$(POD_NAMESPACE)", RELEASE_NS);
  }
  return webhookSettings(flags, "not-the-pod-namespace");
}

/** The API server cannot reach a Service here (no kubelet, no kube-proxy): it calls this process. */
const webhookUrlArgs = () => ["--webhook-url", `https://127.0.0.1:${webhookPort}/mutate-v1-pod`];

const sidecarGateway = (ns: string, name: string) => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyGateway",
  metadata: { name, namespace: ns },
  spec: { mode: "Sidecar", networks: [{ name: "web", port: 8080 }], management: { port: 9090 } },
});
const appPod = (ns: string, name: string, gateway: string): Pod => ({
  metadata: { name, namespace: ns, labels: { [GATEWAY_LABEL]: gateway } },
  spec: { containers: [{ name: "app", image: "registry.example/app:1" }], volumes: [{ name: "data", emptyDir: {} }] },
});
const podJson = (p: Pod) => JSON.stringify({ apiVersion: "v1", kind: "Pod", ...p });
/** Init containers first: the sidecar is a native one (an init container with restartPolicy Always). */
const containerNames = (p: Pod) => [...(p.spec.initContainers ?? []), ...p.spec.containers].map((c) => c.name);

/**
 * Waits until the API server calls the webhook with the configuration it holds now (it reads
 * webhook configurations through an informer): a server-side dry run of `pod` (admission runs,
 * nothing is stored) until `ready` accepts what would be stored.
 */
const dryRunUntil = (what: string, pod: Pod, ready: (stored: Pod) => boolean) =>
  eventually(what, async () => {
    const r = await cp.kubectl(["create", "--dry-run=server", "-o", "json", "-f", "-"], podJson(pod));
    if (r.code !== 0) throw new Error(r.stderr);
    return ready(JSON.parse(r.stdout) as Pod) || undefined;
  });

/** Creates `pod` for real and returns it as the API server stored it. */
async function createPod(pod: Pod): Promise<Pod> {
  await kubectl(["create", "-f", "-"], podJson(pod));
  return getJson<Pod>(["get", "pod", pod.metadata.name, "-n", pod.metadata.namespace!]);
}

/**
 * Points the chart's MutatingWebhookConfiguration at this process (webhookUrlArgs) instead of the
 * Service, as kube-proxy would route it in a cluster, or back at the Service as the chart has it
 * (before a helm upgrade, whose three-way merge would add the Service next to the URL); everything
 * else stays the chart's. A strategic merge by webhook name.
 */
async function routeWebhook(to: "test-operator" | "service"): Promise<void> {
  const service = { namespace: RELEASE_NS, name: WEBHOOK_SERVICE, path: "/mutate-v1-pod", port: 443 };
  const clientConfig = to === "service" ? { url: null, service } : { service: null, url: webhookUrlArgs()[1] };
  const patch = { webhooks: [{ name: "sidecar.harmony.runbeam.io", clientConfig }] };
  await kubectl([
    "patch",
    "mutatingwebhookconfiguration",
    WEBHOOK_CONFIG,
    "--type=strategic",
    "-p",
    JSON.stringify(patch),
  ]);
}

/** The chart's webhook configuration, its caBundle checked against the CA in the operator's Secret. */
async function webhookConfigurationWithCa(): Promise<WebhookConfiguration> {
  const cfg = await eventually("the operator to fill in the caBundle", async () => {
    const c = await getJson<WebhookConfiguration>([
      "get",
      "mutatingwebhookconfiguration",
      WEBHOOK_CONFIG,
      "--show-managed-fields",
    ]);
    return c.webhooks[0]?.clientConfig.caBundle ? c : undefined;
  });
  assert.equal(cfg.metadata.labels?.["app.kubernetes.io/managed-by"], "Helm");
  assert.equal(cfg.webhooks.length, 1);
  const secret = await getJson<{ type: string; data: Record<string, string> }>([
    "get",
    "secret",
    WEBHOOK_SECRET,
    "-n",
    RELEASE_NS,
  ]);
  assert.equal(secret.type, "kubernetes.io/tls");
  for (const k of ["tls.crt", "tls.key", "ca.crt", "ca.key"]) assert.ok(secret.data[k], `the Secret has no ${k}`);
  assert.ok(cfg.webhooks[0]!.clientConfig.caBundle, "no caBundle");
  assert.equal(cfg.webhooks[0]!.clientConfig.caBundle, secret.data["ca.crt"], "caBundle is not the Secret's CA");
  assert.match(Buffer.from(secret.data["ca.crt"]!, "base64").toString(), /^-----BEGIN CERTIFICATE-----/);
  assert.equal(cfg.webhooks[0]!.clientConfig.url, webhookUrlArgs()[1]);
  return cfg;
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
    "--set",
    "webhook.enabled=true,webhook.failurePolicy=Ignore,webhook.namespaceSelector=team=imaging",
  ]);
});

test("values.schema.json refuses values the chart cannot use", async () => {
  for (const [set, complaint] of [
    ["operator.logLevel=verbose", /operator\.logLevel/],
    ["replicas=2", /additional properties 'replicas' not allowed|replicas/],
    ["operator.watchNamespaces={Not_A_Namespace}", /watchNamespaces/],
    ["operator.relistInterval=often", /relistInterval/],
    ["webhook.failurePolicy=fail", /webhook\.failurePolicy/],
    ["webhook.missingGateway=ignore", /webhook\.missingGateway/],
    ["webhook.port=0", /webhook\.port/],
    ["webhook.namespace=x", /additional properties 'namespace' not allowed|namespace/],
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
    "CustomResourceDefinition/harmonynetworks.harmony.runbeam.io",
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
  // An upgrade starts the new replica before the old one goes: the webhook and the Lease keep a candidate.
  assert.deepEqual((d.spec as { strategy?: unknown }).strategy, {
    type: "RollingUpdate",
    rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
  });

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
  assert.deepEqual(verbsFor(clusterRules, "harmony.runbeam.io", "harmonynetworks"), ["get", "list", "watch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "namespaces"), ["list", "watch"]);
  // Secrets are read one at a time, never listed or watched (no cache of every Secret).
  assert.deepEqual(verbsFor(clusterRules, "", "secrets"), ["create", "get", "patch"]);
  // get: a ConfigMap a pipeline's fileOptions name, read when it renders (the cache holds only the operator's
  // own); and the data plane's per-gateway Role grants it, and RBAC lets the operator grant only what it holds.
  // delete: the shards of a set a large gateway has left (README: Large gateways); patch could empty
  // any ConfigMap already, so delete adds no reach.
  assert.deepEqual(verbsFor(clusterRules, "", "configmaps"), ["create", "delete", "get", "list", "patch", "watch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "serviceaccounts"), ["create", "get", "patch"]);
  assert.deepEqual(verbsFor(clusterRules, "rbac.authorization.k8s.io", "roles"), ["create", "get", "patch"]);
  assert.deepEqual(verbsFor(clusterRules, "rbac.authorization.k8s.io", "rolebindings"), ["create", "get", "patch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "pods"), ["list", "watch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "events"), ["create", "patch"]);
  assert.deepEqual(verbsFor(clusterRules, "apps", "deployments"), ["create", "get", "patch"]);
  assert.deepEqual(verbsFor(clusterRules, "", "services"), ["create", "get", "patch"]);
  // The deletes: a PDB the gateway's spec no longer asks for, retired config shards (above), and the
  // cert-manager Certificates of a network that left mode CertManager (or of a gateway that left it).
  assert.deepEqual(verbsFor(clusterRules, "policy", "poddisruptionbudgets"), ["create", "delete", "get", "patch"]);
  assert.deepEqual(verbsFor(clusterRules, "cert-manager.io", "certificates"), ["create", "delete", "list", "patch"]);
  assert.deepEqual(verbsFor(clusterRules, "cert-manager.io", "certificaterequests"), ["list"]);
  for (const r of clusterRules) {
    assert.ok(!r.verbs.includes("*") && !r.resources.includes("*") && !r.apiGroups.includes("*"), JSON.stringify(r));
    const deletable =
      (r.apiGroups.join() === "policy" && r.resources.join() === "poddisruptionbudgets") ||
      (r.apiGroups.join() === "cert-manager.io" && r.resources.join() === "certificates") ||
      (r.apiGroups.join() === "" && r.resources.join() === "configmaps");
    assert.ok(!r.verbs.some((v) => ["deletecollection", "escalate", "bind", "impersonate"].includes(v)));
    assert.ok(deletable || !r.verbs.includes("delete"), JSON.stringify(r));
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
  // The one cluster-wide grant of a scoped operator: HarmonyNetworks, which are cluster-scoped.
  const isNetworkRule = (r: Rule) => r.resources.some((x) => x.startsWith("harmonynetworks"));
  assert.deepEqual(
    all(scoped, "ClusterRole").map((o) => o.metadata.name),
    ["harmony-networks"],
  );
  assert.deepEqual(
    (find(scoped, "ClusterRole", "harmony-networks") as Obj & { rules: Rule[] }).rules,
    clusterRules.filter(isNetworkRule),
  );
  assert.deepEqual(
    (find(scoped, "ClusterRoleBinding", "harmony-networks") as Obj & { subjects: unknown[] }).subjects,
    binding.subjects,
  );
  // The network CA Secrets and peer imports, in the release namespace (not necessarily watched).
  assert.deepEqual((find(scoped, "Role", "harmony-networks", RELEASE_NS) as Obj & { rules: Rule[] }).rules, [
    { apiGroups: [""], resources: ["secrets"], verbs: ["get", "create", "patch"] },
    { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "create", "patch"] },
  ]);
  for (const ns of ["clinic", "radiology"]) {
    const role = find(scoped, "Role", "harmony", ns) as Obj & { rules: Rule[] };
    assert.ok(role, `no Role in ${ns}`);
    // Less the cluster-only rules (HarmonyNetworks, namespaces list/watch, cert-manager's Certificates
    // of networks in mode CertManager, which needs a cluster-wide install), plus `get` on the
    // namespace itself (a network's namespaceSelector reads its labels, one GET per namespace).
    const clusterOnly = (r: Rule) =>
      isNetworkRule(r) || r.resources.includes("namespaces") || r.apiGroups.includes("cert-manager.io");
    assert.deepEqual(
      role.rules,
      [...clusterRules.filter((r) => !clusterOnly(r)), { apiGroups: [""], resources: ["namespaces"], verbs: ["get"] }],
      `the Role in ${ns} grants what the ClusterRole would`,
    );
    const rb = find(scoped, "RoleBinding", "harmony", ns) as Obj & { roleRef: { kind: string } };
    assert.equal(rb.roleRef.kind, "Role");
  }
  const args = find<Deployment>(scoped, "Deployment")!.spec.template.spec.containers[0]!.args;
  assert.ok(args.includes("--watch-namespaces=clinic,radiology"));
  assert.ok(!args.some((a) => a.startsWith("--networks")), "networks on by default");
  // operator.networks=false: no cluster-wide grant at all, and the operator told not to watch networks.
  const noNetworks = await render("operator.watchNamespaces={clinic}", "operator.networks=false");
  assert.equal(find(noNetworks, "ClusterRole"), undefined);
  assert.equal(find(noNetworks, "ClusterRoleBinding"), undefined);
  assert.equal(find(noNetworks, "Role", "harmony-networks"), undefined);
  assert.ok(!JSON.stringify(find(noNetworks, "Role", "harmony", "clinic")).includes("namespaces"));
  assert.ok(
    find<Deployment>(noNetworks, "Deployment")!.spec.template.spec.containers[0]!.args.includes("--networks=false"),
  );

  // Config only: nothing on Deployments or Services.
  const configOnly = (find(await render("operator.manageWorkloads=false"), "ClusterRole") as Obj & { rules: Rule[] })
    .rules;
  assert.ok(
    !configOnly.some((r) =>
      ["deployments", "services", "poddisruptionbudgets", "serviceaccounts", "roles", "rolebindings"].some((x) =>
        r.resources.includes(x),
      ),
    ),
  );
  const noElection = await render("operator.leaderElection.enabled=false");
  assert.equal(find(noElection, "Role"), undefined);
  assert.ok(
    find<Deployment>(noElection, "Deployment")!.spec.template.spec.containers[0]!.args.includes("--leader-elect=false"),
  );
});

test("helm template: the sidecar webhook is off by default; on, its flags, port, Service and name-bound RBAC", async () => {
  const isWebhook = (o: Obj) =>
    o.metadata.name.endsWith("-webhook") ||
    o.metadata.name.includes("sidecar-injector") ||
    o.metadata.name.endsWith("-validator");
  const defaults = await render();
  assert.deepEqual(
    defaults.filter(isWebhook).map((o) => o.kind),
    [],
    "webhook objects rendered by default",
  );
  const dc = find<Deployment>(defaults, "Deployment")!.spec.template.spec.containers[0]!;
  assert.deepEqual(
    dc.args.filter((a) => a.startsWith("--webhook")),
    [],
  );
  assert.deepEqual(
    dc.ports.map((p) => p.name),
    ["health"],
  );
  assert.equal(chartWebhookSettings(dc.args), undefined, "the operator would serve a webhook");

  const on = await render("webhook.enabled=true");
  // Both webhook configurations are the chart's (uninstall removes them), with no caBundle; the
  // operator makes the certificate Secret itself.
  assert.equal(find(on, "Secret"), undefined);
  assert.deepEqual(kindNames(on.filter(isWebhook)), [
    "ClusterRole/harmony-webhook",
    "ClusterRoleBinding/harmony-webhook",
    `MutatingWebhookConfiguration/${WEBHOOK_CONFIG}`,
    "Role/harmony-webhook",
    "RoleBinding/harmony-webhook",
    "Service/harmony-webhook",
    `ValidatingWebhookConfiguration/${VALIDATOR}`,
  ]);
  // The chart's MutatingWebhookConfiguration is what the operator's self-managed mode applies
  // (operator/src/webhook/config.ts) but for caBundle and labels: the same rules, selectors, policy.
  const mwc = find(on, "MutatingWebhookConfiguration", WEBHOOK_CONFIG) as WebhookConfiguration;
  const selfManaged = webhookConfiguration({
    name: WEBHOOK_CONFIG,
    caPem: "x",
    target: { service: { namespace: RELEASE_NS, name: WEBHOOK_SERVICE, port: 443 } },
    failurePolicy: "Fail",
    namespaceSelector: {},
  }) as unknown as WebhookConfiguration;
  const withoutCa = (w: WebhookConfiguration["webhooks"][number]) => ({
    ...w,
    clientConfig: { ...w.clientConfig, caBundle: undefined },
  });
  assert.deepEqual(mwc.webhooks.map(withoutCa), selfManaged.webhooks.map(withoutCa));
  assert.equal(mwc.webhooks[0]!.clientConfig.caBundle, undefined);
  assert.equal(mwc.metadata.labels?.["app.kubernetes.io/managed-by"], "Helm");
  const vwc = find(on, "ValidatingWebhookConfiguration", VALIDATOR) as Obj & {
    webhooks: {
      name: string;
      failurePolicy: string;
      clientConfig: Record<string, unknown>;
      rules: { apiGroups: string[]; resources: string[]; operations: string[] }[];
    }[];
  };
  assert.equal(vwc.webhooks.length, 1);
  assert.equal(vwc.webhooks[0]!.name, "validate.harmony.runbeam.io");
  assert.equal(vwc.webhooks[0]!.failurePolicy, "Fail");
  assert.deepEqual(vwc.webhooks[0]!.clientConfig, {
    service: { namespace: RELEASE_NS, name: WEBHOOK_SERVICE, path: "/validate-harmony-v1alpha1", port: 443 },
  });
  // Harmony's kinds only: Fail can never block pods or anything else the cluster runs on.
  assert.deepEqual(
    vwc.webhooks[0]!.rules.map((r) => [r.apiGroups, r.resources, r.operations]),
    [
      [["harmony.runbeam.io"], ["harmonygateways", "harmonypipelines", "harmonyendpoints"], ["CREATE", "UPDATE"]],
      [["harmony.runbeam.io"], ["harmonynetworks"], ["CREATE", "UPDATE"]],
    ],
  );
  const d = find<Deployment>(on, "Deployment")!;
  const c = d.spec.template.spec.containers[0]!;
  assert.deepEqual(
    c.args.filter((a) => a.startsWith("--webhook")),
    [
      "--webhook-port=9443",
      `--webhook-config-name=${WEBHOOK_CONFIG}`,
      "--webhook-config-external=true",
      `--webhook-service=$(POD_NAMESPACE)/${WEBHOOK_SERVICE}`,
      `--webhook-cert-secret=$(POD_NAMESPACE)/${WEBHOOK_SECRET}`,
      "--webhook-failure-policy=Fail",
      "--webhook-missing-gateway=deny",
    ],
  );
  assert.deepEqual(
    c.ports.map((p) => [p.name, p.containerPort]),
    [
      ["health", 8081],
      ["webhook", 9443],
    ],
  );
  // What the operator makes of those arguments: the Service below, the Secret the Role names.
  const settings = chartWebhookSettings(c.args)!;
  assert.equal(settings.port, 9443);
  assert.equal(settings.configName, WEBHOOK_CONFIG);
  assert.equal(settings.configExternal, true, "the operator would apply its own configuration");
  assert.deepEqual(settings.target, { service: { namespace: RELEASE_NS, name: WEBHOOK_SERVICE, port: 443 } });
  assert.deepEqual(settings.certSecret, { namespace: RELEASE_NS, name: WEBHOOK_SECRET });
  assert.equal(settings.failurePolicy, "Fail");
  assert.equal(settings.onMissingGateway, "deny");
  assert.deepEqual(settings.namespaceSelector, {}, "every namespace");
  assert.deepEqual(settings.validation, { configName: VALIDATOR, failurePolicy: "Fail", external: true });
  const noValidation = await render("webhook.enabled=true,webhook.validation.enabled=false");
  assert.equal(find(noValidation, "ValidatingWebhookConfiguration"), undefined);
  assert.ok(find(noValidation, "MutatingWebhookConfiguration", WEBHOOK_CONFIG));
  const nvArgs = find<Deployment>(noValidation, "Deployment")!.spec.template.spec.containers[0]!.args;
  assert.equal(chartWebhookSettings(nvArgs)!.validation, undefined);
  assert.deepEqual(
    (find(noValidation, "ClusterRole", "harmony-webhook") as Obj & { rules: Rule[] }).rules.map((r) => r.resources),
    [["mutatingwebhookconfigurations"]],
  );

  const svc = find(on, "Service", WEBHOOK_SERVICE, RELEASE_NS) as Obj & {
    spec: { type: string; selector: Record<string, string>; ports: Record<string, unknown>[] };
  };
  assert.equal(svc.spec.type, "ClusterIP");
  assert.deepEqual(svc.spec.selector, d.spec.selector.matchLabels);
  assert.deepEqual(svc.spec.ports, [{ name: "https", port: 443, targetPort: "webhook", protocol: "TCP" }]);

  // RBAC: exactly the calls of operator/src/webhook/server.ts, each bound to its object's name but
  // create of the Secret (a POST carries no name). Both configurations are the chart's: read and
  // patched (their caBundle), never created.
  const cr = find(on, "ClusterRole", "harmony-webhook") as Obj & { rules: Rule[] };
  assert.deepEqual(cr.rules, [
    {
      apiGroups: ["admissionregistration.k8s.io"],
      resources: ["mutatingwebhookconfigurations"],
      resourceNames: [WEBHOOK_CONFIG],
      verbs: ["get", "patch"],
    },
    {
      apiGroups: ["admissionregistration.k8s.io"],
      resources: ["validatingwebhookconfigurations"],
      resourceNames: [VALIDATOR],
      verbs: ["get", "patch"],
    },
  ]);
  const role = find(on, "Role", "harmony-webhook", RELEASE_NS) as Obj & { rules: Rule[] };
  assert.deepEqual(role.rules, [
    { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
    { apiGroups: [""], resources: ["secrets"], resourceNames: [WEBHOOK_SECRET], verbs: ["get", "update"] },
  ]);
  for (const r of [...cr.rules, ...role.rules]) {
    assert.ok(
      ![...r.verbs, ...r.resources, ...r.apiGroups, ...(r.resourceNames ?? [])].includes("*"),
      JSON.stringify(r),
    );
  }
  for (const [kind, roleKind] of [
    ["ClusterRoleBinding", "ClusterRole"],
    ["RoleBinding", "Role"],
  ] as const) {
    const b = find(on, kind, "harmony-webhook") as Obj & {
      roleRef: { kind: string; name: string };
      subjects: { kind: string; name: string; namespace: string }[];
    };
    assert.deepEqual(b.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: roleKind, name: "harmony-webhook" });
    assert.deepEqual(b.subjects, [{ kind: "ServiceAccount", name: RELEASE, namespace: RELEASE_NS }]);
  }
  // The webhook GETs the pod's HarmonyGateway: the operator's own rules grant that.
  const main = (find(on, "ClusterRole", RELEASE) as Obj & { rules: Rule[] }).rules;
  assert.ok(main.some((r) => r.resources.includes("harmonygateways") && r.verbs.includes("get")));

  const tuned = await render(
    "webhook.enabled=true,webhook.port=10443,webhook.failurePolicy=Ignore,webhook.missingGateway=admit",
  );
  const tc = find<Deployment>(tuned, "Deployment")!.spec.template.spec.containers[0]!;
  const ts = chartWebhookSettings(tc.args)!;
  assert.equal(ts.port, 10443);
  assert.equal(tc.ports.find((p) => p.name === "webhook")?.containerPort, 10443);
  assert.equal(ts.failurePolicy, "Ignore");
  assert.equal(ts.onMissingGateway, "admit");
  const own = await render("webhook.enabled=true", "webhook.namespaceSelector=harmony-injection=enabled");
  assert.deepEqual(
    chartWebhookSettings(find<Deployment>(own, "Deployment")!.spec.template.spec.containers[0]!.args)!
      .namespaceSelector,
    { matchLabels: { "harmony-injection": "enabled" } },
  );

  // Scoped: the gateway GET works in the watched namespaces only, so only their pods are sent; a
  // namespaceSelector of one's own is narrowed to them. The configuration is cluster-scoped, so its
  // ClusterRole stays, the only cluster-wide grant.
  const scoped = await render("webhook.enabled=true", "operator.watchNamespaces={clinic,radiology}");
  const sargs = find<Deployment>(scoped, "Deployment")!.spec.template.spec.containers[0]!.args;
  assert.ok(
    sargs.includes("--webhook-namespace-selector=kubernetes.io/metadata.name in (clinic,radiology)"),
    sargs.join(" "),
  );
  assert.deepEqual(chartWebhookSettings(sargs)!.namespaceSelector, {
    matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["clinic", "radiology"] }],
  });
  assert.deepEqual(
    all(scoped, "ClusterRole")
      .map((o) => o.metadata.name)
      .sort(),
    ["harmony-networks", "harmony-webhook"],
  );
  assert.deepEqual((find(scoped, "ClusterRole", "harmony-webhook") as Obj & { rules: Rule[] }).rules, cr.rules);
  assert.deepEqual((find(scoped, "Role", "harmony-webhook", RELEASE_NS) as Obj & { rules: Rule[] }).rules, role.rules);
  const both = await render(
    "webhook.enabled=true",
    "webhook.namespaceSelector=harmony-injection=enabled",
    "operator.watchNamespaces={clinic}",
  );
  assert.deepEqual(
    chartWebhookSettings(find<Deployment>(both, "Deployment")!.spec.template.spec.containers[0]!.args)!
      .namespaceSelector,
    {
      matchLabels: { "harmony-injection": "enabled" },
      matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["clinic"] }],
    },
  );

  // The chart renders the namespace selector the operator parses from the same flag: the chart's
  // template parser (harmony.webhookNamespaceLabelSelector) and parseLabelSelector agree.
  for (const sets of [
    [],
    ["webhook.namespaceSelector=harmony-injection=enabled"],
    ["operator.watchNamespaces={clinic,radiology}"],
    ["webhook.namespaceSelector=harmony-injection=enabled", "operator.watchNamespaces={clinic}"],
    ["webhook.namespaceSelector=tier in (b\\, a\\,b)\\,!legacy\\,env!=dev\\,team\\,zone==eu"],
  ]) {
    const objs = await render("webhook.enabled=true", ...sets);
    const args = find<Deployment>(objs, "Deployment")!.spec.template.spec.containers[0]!.args;
    const flag = args.find((a) => a.startsWith("--webhook-namespace-selector="))?.slice(29) ?? "";
    const rendered = (find(objs, "MutatingWebhookConfiguration") as WebhookConfiguration).webhooks[0]!;
    assert.deepEqual(rendered.namespaceSelector, parseLabelSelector(flag), sets.join(" "));
    assert.deepEqual(rendered.namespaceSelector, chartWebhookSettings(args)!.namespaceSelector);
  }
  const bad = await helmRaw([
    "template",
    RELEASE,
    CHART,
    "--set",
    "webhook.enabled=true",
    "--set",
    "webhook.namespaceSelector=a b",
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /webhook.namespaceSelector "a b": "a b" is not key/);

  // rbac.create=false: the configurations, Service and flags only.
  const noRbac = await render("webhook.enabled=true,rbac.create=false");
  assert.deepEqual(kindNames(noRbac.filter(isWebhook)), [
    `MutatingWebhookConfiguration/${WEBHOOK_CONFIG}`,
    "Service/harmony-webhook",
    `ValidatingWebhookConfiguration/${VALIDATOR}`,
  ]);
});

test("helm template: the webhook's own RBAC reads no Secret but its serving certificate (admission reads no key material)", async () => {
  type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
  for (const sets of [["webhook.enabled=true"], ["webhook.enabled=true", "operator.watchNamespaces={a,b}"]]) {
    const objs = await render(...sets);
    const rules = objs
      .filter((o) => (o.kind === "Role" || o.kind === "ClusterRole") && o.metadata.name === `${RELEASE}-webhook`)
      .flatMap((o) => (o as unknown as { rules: Rule[] }).rules);
    assert.ok(rules.length, sets.join(" "));
    const onSecrets = rules.filter(
      (r) => r.apiGroups.some((g) => g === "" || g === "*") && r.resources.some((x) => x === "secrets" || x === "*"),
    );
    // Reading (and replacing) only the webhook's own certificate, by name; create names no object.
    for (const r of onSecrets) {
      if (r.verbs.every((v) => v === "create")) continue;
      assert.deepEqual(r.resourceNames, [WEBHOOK_SECRET], `${sets.join(" ")}: ${JSON.stringify(r)}`);
      assert.ok(!r.verbs.some((v) => ["list", "watch", "*"].includes(v)), JSON.stringify(r));
    }
  }
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
  // The PDB selects this release's operator pods and no other's: the Deployment's own selector,
  // release instance included, so two releases in one namespace do not share a budget.
  const selector = (pdb.spec.selector as { matchLabels: Record<string, string> }).matchLabels;
  assert.deepEqual(selector, find<Deployment>(on, "Deployment")!.spec.selector.matchLabels);
  assert.equal(selector["app.kubernetes.io/instance"], RELEASE);
  const other = docs(
    await helm(["template", "second", CHART, "--namespace", RELEASE_NS, "--set", "podDisruptionBudget.enabled=true"]),
  );
  const otherSelector = (find(other, "PodDisruptionBudget") as Obj & { spec: { selector: { matchLabels: object } } })
    .spec.selector.matchLabels;
  assert.deepEqual(otherSelector, { ...selector, "app.kubernetes.io/instance": "second" });
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
  // Plus the Namespace the chart leaves to `helm install --create-namespace`, first, so that one
  // `kubectl apply -k` works on a fresh cluster.
  assert.equal(`${built[0]!.kind}/${built[0]!.metadata.name}`, `Namespace/${RELEASE_NS}`);
  assert.deepEqual(kindNames(built.slice(1)), kindNames(chart));
  for (const o of built.slice(1)) {
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
  // The pods' config reader: the operator, holding only the chart's rules, may grant this Role
  // (RBAC forbids granting more than one holds, so an under-provisioned chart fails here).
  const role = await getJson<{ rules: Rule[] }>(["get", "role", "edge-harmony", "-n", ns]);
  assert.deepEqual(
    role.rules.map((r) => [r.resources, r.resourceNames, r.verbs]),
    [
      [["configmaps"], ["edge-harmony-config"], ["get", "watch"]],
      [["secrets"], ["edge-harmony-secrets"], ["get"]],
    ],
  );
  await kubectl(["get", "serviceaccount/edge-harmony", "rolebinding/edge-harmony", "-n", ns]);
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
  // Secrets: one GET at a time, never a list or watch of them all.
  assert.equal(await can(kc, "get", "secrets", "-n", "clinic"), true);
  assert.equal(await can(kc, "list", "secrets", "--all-namespaces"), false);
  assert.equal(await can(kc, "watch", "secrets", "-n", "clinic"), false);
  assert.equal(
    await can(kc, "patch", "harmonygateways.harmony.runbeam.io", "--subresource=status", "-n", "clinic"),
    true,
  );
  assert.equal(await can(kc, "create", "deployments.apps", "-n", "clinic"), true);
  assert.equal(await can(kc, "delete", "poddisruptionbudgets.policy", "-n", "clinic"), true);
  assert.equal(await can(kc, "update", "leases.coordination.k8s.io/harmony-operator", "-n", RELEASE_NS), true);
  for (const denied of [
    ["delete", "customresourcedefinitions.apiextensions.k8s.io"],
    ["create", "customresourcedefinitions.apiextensions.k8s.io"],
    ["create", "pods", "--subresource=exec", "-n", "clinic"],
    ["create", "pods", "-n", "clinic"],
    ["list", "secrets", "-n", "clinic"],
    ["delete", "secrets", "-n", "clinic"],
    ["update", "harmonygateways.harmony.runbeam.io", "-n", "clinic"],
    ["delete", "harmonygateways.harmony.runbeam.io", "-n", "clinic"],
    ["delete", "deployments.apps", "-n", "clinic"],
    ["deletecollection", "poddisruptionbudgets.policy", "-n", "clinic"],
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

test("helm upgrade webhook.enabled: as the ServiceAccount the operator creates its Secret and webhook configuration, and pods get the sidecar", async () => {
  await stopOperator();
  webhookPort = await freePort();
  // No kubelet or kube-proxy here: the API server cannot reach the chart's Service, so the
  // validating webhook (which the chart points at it) is set to Ignore for the rest of the suite.
  const out = await upgradeKeepingHealthPort([
    `webhook.enabled=true,webhook.port=${webhookPort},webhook.validation.failurePolicy=Ignore`,
  ]);
  assert.match(out, new RegExp(`delete secret ${WEBHOOK_SECRET}`), "NOTES name what uninstall leaves");
  // The chart owns the MutatingWebhookConfiguration (so uninstall removes it), with no caBundle yet.
  const manifest = await helm(["get", "manifest", RELEASE, "--namespace", RELEASE_NS]);
  assert.match(manifest, new RegExp(`kind: MutatingWebhookConfiguration\\n[^]*name: ${WEBHOOK_CONFIG}`));
  const installed = await getJson<WebhookConfiguration>(["get", "mutatingwebhookconfiguration", WEBHOOK_CONFIG]);
  assert.equal(installed.webhooks[0]!.clientConfig.caBundle, undefined);
  assert.notEqual(
    (await cp.kubectl(["get", "secret", WEBHOOK_SECRET, "-n", RELEASE_NS])).code,
    0,
    `secret ${WEBHOOK_SECRET} exists before the operator ran`,
  );
  await kubectl(["get", "service", WEBHOOK_SERVICE, "-n", RELEASE_NS]);
  await routeWebhook("test-operator");

  // /readyz answers 200 only once the webhook serves with its certificate and has applied its
  // configuration: both writes went through with the chart's RBAC.
  await startOperatorFromDeployment(webhookUrlArgs());
  assert.match(operatorLog, /"message":"Webhook CA and certificate created"/);
  assert.match(operatorLog, /"message":"Sidecar webhook serving"/);
  const cfg = await webhookConfigurationWithCa();
  const wh = cfg.webhooks[0]!;
  // The operator applied the caBundle and nothing else: Helm still owns the rest of the object.
  const owners = (cfg.metadata as { managedFields?: { manager: string; fieldsV1?: unknown }[] }).managedFields ?? [];
  const ours = owners.find((m) => m.manager === "harmony-operator-webhook");
  assert.ok(ours, JSON.stringify(owners));
  assert.doesNotMatch(JSON.stringify(ours.fieldsV1), /failurePolicy|namespaceSelector|rules|"f:url"|"f:service"/);
  assert.match(JSON.stringify(ours.fieldsV1), /f:caBundle/);
  assert.equal(wh.name, "sidecar.harmony.runbeam.io");
  assert.equal(wh.failurePolicy, "Fail");
  assert.deepEqual(wh.namespaceSelector, {});
  // The chart's ValidatingWebhookConfiguration got the CA from the operator; Helm still owns the rest.
  assert.match(manifest, new RegExp(`kind: ValidatingWebhookConfiguration\\n[^]*name: ${VALIDATOR}`));
  const vwc = await eventually("the operator to inject the validator's caBundle", async () => {
    const v = await getJson<WebhookConfiguration>(["get", "validatingwebhookconfiguration", VALIDATOR]);
    return v.webhooks[0]?.clientConfig.caBundle ? v : undefined;
  });
  assert.equal(vwc.webhooks[0]!.clientConfig.caBundle, cfg.webhooks[0]!.clientConfig.caBundle);
  assert.equal((vwc.webhooks[0]!.clientConfig as { service?: { name: string } }).service?.name, WEBHOOK_SERVICE);
  assert.equal(vwc.webhooks[0]!.failurePolicy, "Ignore");

  // A Sidecar-mode gateway and a pod labelled for it: the API server stores the pod with the sidecar.
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify(sidecarGateway("clinic", "side")));
  await dryRunUntil("the API server to call the webhook", appPod("clinic", "probe", "side"), (p) =>
    containerNames(p).includes(SIDECAR),
  );
  const stored = await createPod(appPod("clinic", "app-with-sidecar", "side"));
  assert.deepEqual(containerNames(stored), [SIDECAR, "app"]);
  assert.deepEqual(
    stored.spec.volumes?.map((v) => v.name),
    ["data", "harmony-config", "harmony-secrets", "harmony-tmp"],
  );
  // The GET of the gateway is allowed: a missing one is a 404 (the webhook's own refusal), not a 403
  // that would surface as a failed webhook call.
  const orphan = await cp.kubectl(["create", "-f", "-"], podJson(appPod("clinic", "orphan", "nope")));
  assert.notEqual(orphan.code, 0);
  assert.match(orphan.stderr, /denied the request: HarmonyGateway clinic\/nope .* does not exist/);
  // An unlabelled pod is not sent to the webhook at all.
  const plain = appPod("clinic", "plain", "x");
  delete plain.metadata.labels;
  assert.deepEqual(containerNames(await createPod(plain)), ["app"]);
  assertNoAccessErrors();

  const kc = saKubeconfig;
  const mwc = "mutatingwebhookconfigurations.admissionregistration.k8s.io";
  for (const allowed of [
    ["get", `secrets/${WEBHOOK_SECRET}`, "-n", RELEASE_NS],
    ["update", `secrets/${WEBHOOK_SECRET}`, "-n", RELEASE_NS],
    ["create", "secrets", "-n", RELEASE_NS],
    ["get", `${mwc}/${WEBHOOK_CONFIG}`],
    ["patch", `${mwc}/${WEBHOOK_CONFIG}`],
    ["get", `validatingwebhookconfigurations.admissionregistration.k8s.io/${VALIDATOR}`],
    ["patch", `validatingwebhookconfigurations.admissionregistration.k8s.io/${VALIDATOR}`],
    ["get", "harmonygateways.harmony.runbeam.io/side", "-n", "clinic"],
  ]) {
    assert.equal(await can(kc, ...allowed), true, `can-i ${allowed.join(" ")} should be yes`);
  }
  for (const denied of [
    // (get of a Secret by name is the operator's, cluster-wide: secretKeyRefs are read on demand.)
    ["list", "secrets", "-n", RELEASE_NS],
    ["watch", "secrets", "-n", RELEASE_NS],
    ["update", "secrets/other", "-n", RELEASE_NS],
    ["update", `secrets/${WEBHOOK_SECRET}`, "-n", "clinic"],
    ["delete", `secrets/${WEBHOOK_SECRET}`, "-n", RELEASE_NS],
    ["patch", `${mwc}/other`],
    ["get", `${mwc}/other`],
    ["create", `${mwc}/other`],
    ["create", mwc],
    ["list", mwc],
    ["watch", mwc],
    ["create", `${mwc}/${WEBHOOK_CONFIG}`],
    ["update", `${mwc}/${WEBHOOK_CONFIG}`],
    ["delete", `${mwc}/${WEBHOOK_CONFIG}`],
    ["create", "validatingwebhookconfigurations.admissionregistration.k8s.io"],
    ["patch", "validatingwebhookconfigurations.admissionregistration.k8s.io/other"],
    ["delete", `validatingwebhookconfigurations.admissionregistration.k8s.io/${VALIDATOR}`],
  ]) {
    assert.equal(await can(kc, ...denied), false, `can-i ${denied.join(" ")} should be no`);
  }
});

test("helm upgrade to watchNamespaces: Roles replace the ClusterRole, and the operator still reconciles", async () => {
  await stopOperator();
  const caBundle = async () =>
    (await getJson<WebhookConfiguration>(["get", "mutatingwebhookconfiguration", WEBHOOK_CONFIG])).webhooks[0]!
      .clientConfig.caBundle;
  const oldCa = await caBundle();
  assert.ok(oldCa);
  await upgradeKeepingHealthPort([
    "operator.watchNamespaces={clinic}",
    `webhook.enabled=true,webhook.port=${webhookPort},webhook.validation.failurePolicy=Ignore`,
  ]);
  // Helm's upgrade changes what the chart renders and leaves the operator's caBundle alone.
  assert.equal(await caBundle(), oldCa, "helm upgrade dropped the caBundle");
  assert.notEqual((await cp.kubectl(["get", "clusterrole", RELEASE])).code, 0, "the ClusterRole outlived the upgrade");
  assert.notEqual((await cp.kubectl(["get", "clusterrolebinding", RELEASE])).code, 0);
  await kubectl(["get", "role", RELEASE, "-n", "clinic"]);
  await kubectl(["get", "rolebinding", RELEASE, "-n", "clinic"]);

  const kc = saKubeconfig;
  assert.equal(await can(kc, "get", "secrets", "-n", "clinic"), true);
  assert.equal(
    await can(kc, "patch", "harmonypipelines.harmony.runbeam.io", "--subresource=status", "-n", "clinic"),
    true,
  );
  assert.equal(await can(kc, "list", "secrets", "-n", "examples"), false);
  assert.equal(await can(kc, "list", "secrets", "-n", "kube-system"), false);
  assert.equal(await can(kc, "list", "secrets", "--all-namespaces"), false);
  assert.equal(await can(kc, "list", "harmonygateways.harmony.runbeam.io", "--all-namespaces"), false);
  // Networks stay on (cluster-scoped kind, ClusterRole harmony-networks), namespaces are not listed.
  assert.equal(await can(kc, "list", "harmonynetworks.harmony.runbeam.io"), true);
  assert.equal(await can(kc, "list", "namespaces"), false);
  assert.equal(
    await can(kc, "patch", "harmonygateways.harmony.runbeam.io", "--subresource=status", "-n", "examples"),
    false,
  );
  assert.equal(await can(kc, "list", "pods", "-n", "examples"), false);

  // The webhook's writes with the scoped RBAC, from scratch: the release namespace is not watched,
  // so the Secret's create, read and the caBundle's patch rest on the webhook's own grants. A new
  // CA: the caBundle must follow it.
  await kubectl(["delete", "secret", WEBHOOK_SECRET, "-n", RELEASE_NS, "--ignore-not-found"]);
  await routeWebhook("test-operator");
  await startOperatorFromDeployment(webhookUrlArgs());
  assert.match(operatorLog, /"watch_namespaces":\["clinic"\]/);
  assert.match(operatorLog, /"message":"Webhook CA and certificate created"/);
  const cfg = await webhookConfigurationWithCa();
  assert.notEqual(cfg.webhooks[0]!.clientConfig.caBundle, oldCa, "the caBundle still names the old CA");
  assert.deepEqual(cfg.webhooks[0]!.namespaceSelector, {
    matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["clinic"] }],
  });
  await dryRunUntil("the API server to call the recreated webhook", appPod("clinic", "probe", "side"), (p) =>
    containerNames(p).includes(SIDECAR),
  );
  assert.deepEqual(containerNames(await createPod(appPod("clinic", "scoped-app", "side"))), [SIDECAR, "app"]);
  // A pod in an unwatched namespace is not sent (the operator may not read gateways there, and with
  // failurePolicy Fail a forbidden GET would refuse the pod): it is stored as it came.
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify(sidecarGateway("examples", "side")));
  const outside = appPod("examples", "outside", "side");
  await dryRunUntil(
    "the API server to leave pods outside clinic alone",
    outside,
    (p) => containerNames(p).length === 1,
  );
  assert.deepEqual(containerNames(await createPod(outside)), ["app"]);
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

  // The operator never makes the chart's configuration itself (a half one, or one that outlives
  // the release): with it gone, the start fails and says whose it is.
  await stopOperator();
  await kubectl(["delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIG]);
  await assert.rejects(startOperatorFromDeployment(webhookUrlArgs()), /operator exited \(1\)/);
  assert.match(
    operatorLog,
    new RegExp(`MutatingWebhookConfiguration ${WEBHOOK_CONFIG} not found: it is installed with the operator`),
  );
  assert.notEqual((await cp.kubectl(["get", "mutatingwebhookconfiguration", WEBHOOK_CONFIG])).code, 0);
});

test("helm uninstall keeps the CRDs and the resources, and removes the operator's access", async () => {
  await stopOperator();
  await helm(["uninstall", RELEASE, "--namespace", RELEASE_NS]);
  for (const k of KINDS) await kubectl(["get", "crd", `${k.toLowerCase()}s.harmony.runbeam.io`]);
  await kubectl(["get", "harmonygateway", "edge", "-n", "clinic"]);
  assert.notEqual((await cp.kubectl(["get", "role", RELEASE, "-n", "clinic"])).code, 0);
  assert.notEqual((await cp.kubectl(["get", "serviceaccount", RELEASE, "-n", RELEASE_NS])).code, 0);
  for (const gone of [
    ["clusterrole", "harmony-webhook"],
    ["clusterrolebinding", "harmony-webhook"],
    ["role", "harmony-webhook", "-n", RELEASE_NS],
    ["service", WEBHOOK_SERVICE, "-n", RELEASE_NS],
    ["validatingwebhookconfiguration", VALIDATOR],
    ["mutatingwebhookconfiguration", WEBHOOK_CONFIG],
  ]) {
    assert.notEqual((await cp.kubectl(["get", ...gone])).code, 0, `${gone.join(" ")} outlived the uninstall`);
  }
  // No fail-closed webhook is left for labelled pods: with the operator gone they are created as
  // they come (the API server drops the configuration from its informer a moment after the delete).
  const after = appPod("clinic", "after-uninstall", "side");
  await dryRunUntil("the API server to stop calling the removed webhook", after, (p) => containerNames(p).length === 1);
  assert.deepEqual(containerNames(await createPod(after)), ["app"]);
  // What the operator made, Helm does not own: the chart README's clean-up step removes it.
  await kubectl(["delete", "secret", WEBHOOK_SECRET, "-n", RELEASE_NS]);
});

test("kubectl apply -f crds/, then helm install with crds.enabled=false; a second release; adopting the CRDs", async () => {
  // A fresh start: no CRDs (deleting one deletes its resources; nothing else in the suite needs them).
  await kubectl(["delete", "-f", join(ROOT, "crds"), "--wait=true"]);
  await kubectl(["apply", "--server-side", "-f", join(ROOT, "crds")]);
  const crdNames = KINDS.map((k) => `${k.toLowerCase()}s.harmony.runbeam.io`);

  // With the default crds.enabled=true Helm refuses CRDs it did not create: the documented failure.
  const refused = await helmRaw(["install", RELEASE, CHART, "--namespace", RELEASE_NS, "--create-namespace"]);
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    /CustomResourceDefinition "harmony[a-z]+\.harmony\.runbeam\.io" .*exists and cannot be imported/,
  );

  // crds.enabled=false: the release installs the operator and leaves the CRDs to kubectl.
  await helm(["install", RELEASE, CHART, "--namespace", RELEASE_NS, "--set", "crds.enabled=false"]);
  const manifest = await helm(["get", "manifest", RELEASE, "--namespace", RELEASE_NS]);
  assert.doesNotMatch(manifest, /kind: CustomResourceDefinition/);
  await kubectl(["get", "deployment", RELEASE, "-n", RELEASE_NS]);
  for (const name of crdNames) {
    const crd = await getJson<Obj>(["get", "crd", name]);
    assert.equal(crd.metadata.annotations?.["meta.helm.sh/release-name"], undefined, `${name} was taken over`);
  }

  // A second release in another namespace (its own name: ClusterRoles and webhook configurations
  // are cluster-scoped and named after the release), scoped to its own namespaces, sharing the CRDs.
  const second = "harmony-second";
  const secondNs = "harmony-second-system";
  const secondValues = ["crds.enabled=false", "operator.watchNamespaces={radiology}"];
  await kubectl(["create", "namespace", "radiology"]);
  await helm([
    "install",
    second,
    CHART,
    "--namespace",
    secondNs,
    "--create-namespace",
    ...secondValues.flatMap((v) => ["--set", v]),
  ]);
  await kubectl(["get", "deployment", second, "-n", secondNs]);
  await kubectl(["get", "role", second, "-n", "radiology"]);

  // Turning the webhook on over a configuration an older operator made itself (as every version
  // before the chart owned it did): Helm refuses to take it over unless told to, as the chart
  // README says; --take-ownership makes it the chart's, so uninstall removes it.
  const injector = `${second}-sidecar-injector`;
  const oldOwn = webhookConfiguration({
    name: injector,
    caPem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    target: { service: { namespace: secondNs, name: `${second}-webhook`, port: 443 } },
    failurePolicy: "Fail",
    namespaceSelector: {},
  });
  await kubectl(
    ["apply", "--server-side", "--field-manager", "harmony-operator-webhook", "-f", "-"],
    JSON.stringify(oldOwn),
  );
  const upgrade = [
    "upgrade",
    second,
    CHART,
    "--namespace",
    secondNs,
    ...[...secondValues, "webhook.enabled=true"].flatMap((v) => ["--set", v]),
  ];
  const notAdopted = await helmRaw(upgrade);
  assert.notEqual(notAdopted.code, 0);
  assert.match(
    notAdopted.stderr,
    new RegExp(`MutatingWebhookConfiguration "${injector}" .*exists and cannot be imported`),
  );
  await helm([...upgrade, "--take-ownership"]);
  const adopted = await getJson<WebhookConfiguration>(["get", "mutatingwebhookconfiguration", injector]);
  assert.equal(adopted.metadata.annotations?.["meta.helm.sh/release-name"], second);
  assert.equal(adopted.metadata.labels?.["app.kubernetes.io/managed-by"], "Helm");
  assert.deepEqual(adopted.webhooks[0]!.namespaceSelector, {
    matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["radiology"] }],
  });
  // ...whereas a second release that also wants to own the CRDs is refused.
  const third = await helmRaw([
    "install",
    "harmony-third",
    CHART,
    "--namespace",
    "harmony-third",
    "--create-namespace",
  ]);
  assert.notEqual(third.code, 0);
  assert.match(third.stderr, /CustomResourceDefinition .* exists and cannot be imported/);

  // Both uninstall cleanly, the CRDs untouched; then adopting the kubectl-applied CRDs with
  // --take-ownership makes them the release's (kept on uninstall, upgraded by helm upgrade).
  await helm(["uninstall", second, "--namespace", secondNs]);
  await helm(["uninstall", RELEASE, "--namespace", RELEASE_NS]);
  for (const name of crdNames) await kubectl(["get", "crd", name]);
  assert.notEqual((await cp.kubectl(["get", "mutatingwebhookconfiguration", `${second}-sidecar-injector`])).code, 0);
  await helm(["install", RELEASE, CHART, "--namespace", RELEASE_NS, "--take-ownership"]);
  for (const name of crdNames) {
    const crd = await getJson<Obj>(["get", "crd", name]);
    assert.equal(crd.metadata.annotations?.["meta.helm.sh/release-name"], RELEASE);
    assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], "keep");
  }
  await helm(["uninstall", RELEASE, "--namespace", RELEASE_NS]);
  for (const name of crdNames) await kubectl(["get", "crd", name]);
});

test("kubectl apply -k: the kustomize base installs on a fresh cluster, its Namespace included", async () => {
  // A fresh cluster as far as the base goes: no CRDs, and (through an overlay that moves the install,
  // as the base's comment shows) a namespace that does not exist yet.
  await kubectl(["delete", "-f", join(ROOT, "crds"), "--wait=true"]);
  const ns = "harmony-kustomize";
  assert.notEqual((await cp.kubectl(["get", "namespace", ns])).code, 0);
  const overlay = join(work, "kustomize-overlay");
  mkdirSync(overlay, { recursive: true });
  writeFileSync(
    join(overlay, "kustomization.yaml"),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: ${ns}\nresources:\n  - ${relative(overlay, join(ROOT, "deploy/kustomize/base"))}\n`,
  );
  const applied = await cp.kubectl(["apply", "--server-side", "-k", overlay]);
  assert.equal(applied.code, 0, applied.stderr);
  await kubectl(["get", "namespace", ns]);
  await kubectl(["get", "deployment", RELEASE, "-n", ns]);
  await kubectl(["get", "serviceaccount", RELEASE, "-n", ns]);
  for (const k of KINDS) await kubectl(["get", "crd", `${k.toLowerCase()}s.harmony.runbeam.io`]);
  const binding = await getJson<{ subjects: { namespace: string }[] }>(["get", "clusterrolebinding", RELEASE]);
  assert.deepEqual(
    binding.subjects.map((x) => x.namespace),
    [ns],
  );
});
