/**
 * Sidecar mode: the operator's mutating admission webhook against a real kube-apiserver. Pods are
 * created with kubectl as a user would and read back from the API server, so what is asserted is
 * what the API server stored after calling the webhook. No kubelet runs: pods stay Pending.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { request as httpsRequest } from "node:https";
import { connect } from "node:tls";
import { join } from "node:path";
import type { V1Container, V1MutatingWebhookConfiguration, V1Pod, V1Secret } from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { ROOT, eventually as poll, freePort, sleep } from "../dataplane/test/helpers.js";
import type { HarmonyGateway } from "../operator/src/api/v1alpha1.js";
import { parseLabelSelector } from "../operator/src/webhook/config.js";
import { webhookSettings } from "../operator/src/webhook/flags.js";
import { SIDECAR_NAME, injectionPatch, sidecarFor } from "../operator/src/webhook/inject.js";
import { assessBundle, checkExternal, createBundle, issueServing } from "../operator/src/webhook/certs.js";
import { deploymentFor } from "../operator/src/translator/workload.js";

const CONFIG_NAME = "harmony-test-injector";
const SECRET_NS = "harmony-system";
const SECRET_NAME = "harmony-webhook-cert";
const IMAGE = "registry.example/harmony-dataplane:test";
const SELECTED = "clinic"; // labelled harmony-injection=enabled
const UNSELECTED = "lab"; // not labelled: the namespaceSelector keeps the webhook out
const SELECTOR = "harmony-injection=enabled,kubernetes.io/metadata.name notin (kube-system,kube-public)";

const gateway = (ns: string, name: string, mode: "Sidecar" | "Deployment"): HarmonyGateway => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyGateway",
  metadata: { name, namespace: ns },
  spec: { mode, networks: [{ name: "web", port: 8080 }], management: { port: 9090 } },
});

const appPod = (ns: string, name: string, labels: Record<string, string> = {}): V1Pod => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: ns, labels },
  spec: {
    containers: [{ name: "app", image: "registry.example/app:1", ports: [{ name: "web", containerPort: 8000 }] }],
    volumes: [{ name: "data", emptyDir: {} }],
  },
});

// ---- Pure parts: no API server needed ---------------------------------------------------------

test("label selectors parse the way kubectl writes them, and bad ones name the bad part", () => {
  assert.deepEqual(parseLabelSelector(""), {});
  assert.deepEqual(parseLabelSelector("a=b, c==d ,e!=f,g in (y, x),h notin (z),i,!j"), {
    matchLabels: { a: "b", c: "d" },
    matchExpressions: [
      { key: "e", operator: "NotIn", values: ["f"] },
      { key: "g", operator: "In", values: ["x", "y"] },
      { key: "h", operator: "NotIn", values: ["z"] },
      { key: "i", operator: "Exists" },
      { key: "j", operator: "DoesNotExist" },
    ],
  });
  assert.deepEqual(parseLabelSelector("example.com/team=a-b_c.d"), { matchLabels: { "example.com/team": "a-b_c.d" } });
  assert.throws(() => parseLabelSelector("a=b,,c"), /empty requirement/);
  assert.throws(() => parseLabelSelector("a b"), /"a b": expected key/);
  assert.throws(() => parseLabelSelector("a=b c"), /label selector/);
  assert.throws(() => parseLabelSelector("-a=b"), /not a valid label key/);
  assert.throws(() => parseLabelSelector("a=b,a=c"), /given twice/);
});

test("webhook flags: off without a port; every bad value is refused with the flag named", () => {
  assert.equal(webhookSettings({}, "ops"), undefined);
  const s = webhookSettings({ "webhook-port": "9443" }, "ops")!;
  assert.deepEqual(s.certSecret, { namespace: "ops", name: "harmony-webhook-cert" });
  assert.deepEqual(s.target, { service: { namespace: "ops", name: "harmony-operator-webhook", port: 443 } });
  assert.equal(s.failurePolicy, "Fail");
  assert.equal(s.onMissingGateway, "deny");
  assert.deepEqual(webhookSettings({ "webhook-port": "1", "webhook-url": "https://10.0.0.1:9443" }, "x")!.target, {
    url: "https://10.0.0.1:9443/mutate-v1-pod",
  });
  const bad: [Record<string, string>, RegExp][] = [
    [{ "webhook-port": "x" }, /--webhook-port/],
    [{ "webhook-port": "1", "webhook-failure-policy": "fail" }, /--webhook-failure-policy/],
    [{ "webhook-port": "1", "webhook-missing-gateway": "ignore" }, /--webhook-missing-gateway/],
    [{ "webhook-port": "1", "webhook-url": "http://127.0.0.1:1/mutate-v1-pod" }, /must be https/],
    [{ "webhook-port": "1", "webhook-url": "https://127.0.0.1:1/inject" }, /path must be \/mutate-v1-pod/],
    [{ "webhook-port": "1", "webhook-cert-secret": "a/b/c" }, /--webhook-cert-secret/],
    [{ "webhook-port": "1", "webhook-namespace-selector": "a in b" }, /--webhook-namespace-selector/],
  ];
  for (const [flags, re] of bad) assert.throws(() => webhookSettings(flags, "x"), re, JSON.stringify(flags));
});

test("the sidecar is the gateway Deployment's container, renamed so it cannot clash with the pod's", () => {
  const gw = gateway("clinic", "edge", "Sidecar");
  const fromDeployment = (
    deploymentFor(gw, IMAGE, { watchApi: false }) as { spec: { template: { spec: { containers: V1Container[] } } } }
  ).spec.template.spec.containers[0]!;
  const { container, volumes } = sidecarFor(gw, IMAGE);
  assert.equal(container.name, SIDECAR_NAME);
  // Files only: the sidecar runs as the application's ServiceAccount, which must not read the gateway's Secret.
  assert.ok(!container.args!.includes("--config-source"));
  for (const k of ["image", "args", "ports", "readinessProbe", "livenessProbe"] as const) {
    assert.deepEqual(container[k], fromDeployment[k], k);
  }
  assert.deepEqual(
    container.volumeMounts,
    fromDeployment.volumeMounts!.map((m) => ({ ...m, name: `harmony-${m.name}` })),
  );
  assert.deepEqual(
    volumes.map((v) => v.name),
    ["harmony-config", "harmony-secrets", "harmony-tmp"],
  );
  // No fsGroup of ours in the application's pod, so the Deployment's group-only 0440 would lock the
  // data plane out of root-owned files: 0444, and only the sidecar mounts the volume.
  assert.equal(volumes.find((v) => v.secret)?.secret?.defaultMode, 0o444);
  // The pod-level hardening of the Deployment moves onto the container: the pod is the application's.
  assert.equal(container.securityContext?.runAsNonRoot, true);
  assert.equal(container.securityContext?.runAsUser, 65532);
  assert.equal(container.securityContext?.readOnlyRootFilesystem, true);

  const pod = appPod("clinic", "p");
  pod.spec!.containers[0]!.ports = [{ name: "management", containerPort: 9090 }];
  const { patch, warnings } = injectionPatch(pod, gw, IMAGE);
  // Native sidecar by default: the pod has no init containers, so the list is added whole.
  const added = (patch.find((op) => op.path === "/spec/initContainers")!.value as V1Container[])[0]!;
  // A duplicate port name would get the pod rejected; the number stays, with a warning about the bind.
  assert.deepEqual(
    added.ports!.find((p) => p.containerPort === 9090),
    { containerPort: 9090, protocol: "TCP" },
  );
  assert.match(warnings.join("\n"), /port 9090 .* container "app"/);
  assert.deepEqual(
    patch.filter((op) => op.path === "/spec/volumes/-").map((op) => (op.value as { name: string }).name),
    ["harmony-config", "harmony-secrets", "harmony-tmp"],
  );
  const injected: V1Pod = { ...pod, spec: { ...pod.spec!, initContainers: [added] } };
  assert.deepEqual(injectionPatch(injected, gw, IMAGE).patch, [], "a pod that has the sidecar gets no second one");
  const bare: V1Pod = { metadata: {}, spec: { containers: [{ name: "app" }] } };
  assert.equal(injectionPatch(bare, gw).patch[0]!.path, "/spec/volumes", "no volumes yet: the array is added whole");
});

test("stored certificates are reused while good, renewed under the same CA, replaced when unusable, left alone when issued elsewhere", () => {
  const hosts = ["127.0.0.1", "svc.ns.svc"];
  const b = createBundle(hosts);
  assert.equal(assessBundle(b, hosts), "ok");
  assert.equal(assessBundle(b, [...hosts, "other.ns.svc"]), "renew-serving");
  assert.equal(assessBundle({ ...b, certPem: undefined }, hosts), "renew-serving");
  assert.equal(assessBundle(b, hosts, new Date(Date.now() + 300 * 86_400_000)), "renew-serving");
  assert.equal(assessBundle({ ...b, caKeyPem: issueServing(b, hosts).keyPem }, hosts), "replace");
  assert.equal(assessBundle({}, hosts), "replace");
  const other = createBundle(hosts);
  assert.equal(assessBundle({ ...b, certPem: other.certPem, keyPem: other.keyPem }, hosts), "renew-serving");
  // cert-manager's layout (no ca.key): someone else renews it; served as it is, never overwritten.
  assert.equal(assessBundle({ ...b, caKeyPem: undefined }, ["elsewhere"]), "external");
  assert.doesNotThrow(() => checkExternal(b));
  assert.throws(() => checkExternal({ ...b, keyPem: other.keyPem }), /tls\.key does not match/);
  assert.throws(() => checkExternal({ ...b, caPem: other.caPem }), /not signed by ca\.crt/);
  const cert = new X509Certificate(b.certPem);
  assert.ok(cert.checkIssued(new X509Certificate(b.caPem)));
  assert.match(cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1, DNS:svc\.ns\.svc/);
});

// ---- Against the real API server --------------------------------------------------------------

let cp: ControlPlane;
let webhookPort: number;
let operator: { proc: ChildProcess; log: () => string } | undefined;

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, "-o", "json"])) as T;

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${operator?.log().slice(-4000) ?? ""}` });

async function startOperator(failurePolicy: "Fail" | "Ignore"): Promise<void> {
  const proc = spawn(
    process.execPath,
    [
      join(ROOT, "operator/dist/main.js"),
      "--kubeconfig",
      cp.kubeconfig,
      "--leader-elect",
      "false",
      "--health-port",
      "0",
      "--image",
      IMAGE,
      "--webhook-port",
      String(webhookPort),
      "--webhook-url",
      `https://127.0.0.1:${webhookPort}/mutate-v1-pod`,
      "--webhook-config-name",
      CONFIG_NAME,
      "--webhook-cert-secret",
      `${SECRET_NS}/${SECRET_NAME}`,
      "--webhook-failure-policy",
      failurePolicy,
      "--webhook-namespace-selector",
      SELECTOR,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  proc.stdout.setEncoding("utf8").on("data", (c: string) => (log += c));
  proc.stderr.setEncoding("utf8").on("data", (c: string) => (log += c));
  operator = { proc, log: () => log };
  const end = Date.now() + 60_000;
  while (!/"message":"Sidecar webhook serving"/.test(log)) {
    if (proc.exitCode !== null || Date.now() > end) {
      throw new Error(`the operator's webhook did not start (exit ${proc.exitCode}):\n${log}`);
    }
    await sleep(100);
  }
  // The API server picks up a changed webhook configuration through its own informer: probe with a
  // server-side dry run (it runs admission, stores nothing) until the current settings are in force.
  await eventually("the API server to call the webhook", async () => {
    const r = await cp.kubectl(
      ["create", "--dry-run=server", "-o", "json", "-f", "-"],
      JSON.stringify(appPod(SELECTED, "probe", { "harmony.runbeam.io/gateway": "edge" })),
    );
    if (r.code !== 0) return undefined;
    const pod = JSON.parse(r.stdout) as V1Pod;
    // Either form: this only waits for the webhook; the tests below check the shape.
    const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
    return all.some((c) => c.name === SIDECAR_NAME) ? true : undefined;
  });
}

async function stopOperator(): Promise<void> {
  const o = operator;
  operator = undefined;
  if (!o || o.proc.exitCode !== null || o.proc.signalCode !== null) return;
  o.proc.kill("SIGTERM");
  const t = setTimeout(() => o.proc.kill("SIGKILL"), 10_000);
  await once(o.proc, "exit");
  clearTimeout(t);
}

const webhookConfig = () =>
  getJson<V1MutatingWebhookConfiguration>(["get", "mutatingwebhookconfiguration", CONFIG_NAME]);
const certSecret = () => getJson<V1Secret>(["get", "secret", SECRET_NAME, "-n", SECRET_NS]);
const decode = (s: V1Secret, k: string) => Buffer.from(s.data![k]!, "base64").toString("utf8");

/** The certificate the webhook presents on a TLS handshake, verified against `caPem`. */
function servedCertificate(caPem: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: webhookPort, ca: caPem }, () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(new X509Certificate(raw));
    });
    s.on("error", reject);
  });
}

/** POSTs an AdmissionReview to the webhook directly, trusting only `caPem`. */
function postReview(caPem: string, body: unknown, method = "POST"): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `https://127.0.0.1:${webhookPort}/mutate-v1-pod`,
      { method, ca: caPem, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }));
      },
    );
    req.on("error", reject);
    req.end(method === "POST" ? JSON.stringify(body) : undefined);
  });
}

async function createPod(pod: V1Pod): Promise<{ code: number; stderr: string; stored?: V1Pod }> {
  const r = await cp.kubectl(["create", "-f", "-"], JSON.stringify(pod));
  if (r.code !== 0) return { code: r.code, stderr: r.stderr };
  const stored = await getJson<V1Pod>(["get", "pod", pod.metadata!.name!, "-n", pod.metadata!.namespace!]);
  return { code: 0, stderr: r.stderr, stored };
}

before(async () => {
  cp = await startControlPlane();
  webhookPort = await freePort();
  await cp.installCrds();
  await kubectl(["create", "namespace", SECRET_NS]);
  await kubectl(["create", "namespace", SELECTED]);
  await kubectl(["label", "namespace", SELECTED, "harmony-injection=enabled"]);
  await kubectl(["create", "namespace", UNSELECTED]);
  const legacy = gateway(SELECTED, "legacy", "Sidecar");
  legacy.spec.sidecar = { native: false };
  const docs = [
    gateway(SELECTED, "edge", "Sidecar"),
    legacy,
    gateway(SELECTED, "classic", "Deployment"),
    gateway(UNSELECTED, "edge", "Sidecar"),
  ];
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: docs }));
  await startOperator("Ignore");
});

after(async () => {
  await stopOperator();
  await cp?.stop();
});

test("the operator applies its MutatingWebhookConfiguration from its flags, caBundle = the CA in its Secret", async () => {
  const cfg = await webhookConfig();
  assert.equal(cfg.metadata?.labels?.["app.kubernetes.io/managed-by"], "harmony-operator");
  assert.equal(cfg.webhooks?.length, 1);
  const [wh] = cfg.webhooks ?? [];
  assert.ok(wh);
  assert.equal(wh.name, "sidecar.harmony.runbeam.io");
  assert.equal(wh.failurePolicy, "Ignore");
  assert.equal(wh.sideEffects, "None");
  assert.deepEqual(wh.admissionReviewVersions, ["v1"]);
  assert.deepEqual(wh.namespaceSelector, {
    matchLabels: { "harmony-injection": "enabled" },
    matchExpressions: [
      { key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["kube-public", "kube-system"] },
    ],
  });
  assert.deepEqual(wh.objectSelector?.matchExpressions, [
    { key: "harmony.runbeam.io/gateway", operator: "Exists" },
    { key: "app.kubernetes.io/managed-by", operator: "NotIn", values: ["harmony-operator"] },
  ]);
  assert.equal(wh.clientConfig.url, `https://127.0.0.1:${webhookPort}/mutate-v1-pod`);
  assert.deepEqual(wh.rules?.[0]?.operations, ["CREATE"]);
  assert.deepEqual(wh.rules?.[0]?.resources, ["pods"]);

  const secret = await certSecret();
  assert.equal(secret.type, "kubernetes.io/tls");
  const caPem = decode(secret, "ca.crt");
  assert.equal(Buffer.from(wh.clientConfig.caBundle!, "base64").toString("utf8"), caPem);
  const ca = new X509Certificate(caPem);
  assert.ok(ca.ca);
  const served = await servedCertificate(caPem);
  assert.equal(served.fingerprint256, new X509Certificate(decode(secret, "tls.crt")).fingerprint256);
  assert.ok(served.checkIssued(ca) && served.verify(ca.publicKey));
  assert.equal(served.checkIP("127.0.0.1"), "127.0.0.1");
});

test("a labelled pod gets the data plane as a native sidecar and the gateway's config volumes", async () => {
  const { code, stderr, stored } = await createPod(
    appPod(SELECTED, "with-sidecar", { "harmony.runbeam.io/gateway": "edge" }),
  );
  assert.equal(code, 0, stderr);
  const containers = stored!.spec!.containers;
  assert.deepEqual(
    containers.map((c) => c.name),
    ["app"],
  );
  assert.deepEqual(
    stored!.spec!.initContainers?.map((c) => c.name),
    [SIDECAR_NAME],
  );
  const sc = stored!.spec!.initContainers[0]!;
  // restartPolicy Always makes it a sidecar (runs for the pod's life, does not hold a Job open);
  // the startup probe makes the kubelet wait for a ready proxy before it starts the app.
  assert.equal(sc.restartPolicy, "Always");
  assert.deepEqual(sc.startupProbe?.httpGet, { path: "/readyz", port: 9090, scheme: "HTTP" });
  assert.equal(sc.startupProbe?.periodSeconds, 1);
  const expected = sidecarFor(gateway(SELECTED, "edge", "Sidecar"), IMAGE).container;
  assert.equal(sc.image, IMAGE);
  assert.deepEqual(sc.args, ["--config", "/etc/harmony/config/config.toml"]);
  // "web" is the app container's port name already: the sidecar's port keeps its number, not the name.
  assert.deepEqual(
    sc.ports?.map((p) => [p.name, p.containerPort]),
    [
      [undefined, 8080],
      ["management", 9090],
    ],
  );
  assert.deepEqual(sc.readinessProbe?.httpGet, { path: "/readyz", port: 9090, scheme: "HTTP" });
  assert.deepEqual(
    sc.volumeMounts?.map((m) => [m.name, m.mountPath]),
    expected.volumeMounts!.map((m) => [m.name, m.mountPath]),
  );
  const byName = new Map(stored!.spec!.volumes!.map((v) => [v.name, v]));
  assert.ok(byName.has("data"), "the pod's own volume stays");
  assert.equal(byName.get("harmony-config")?.configMap?.name, "edge-harmony-config");
  assert.equal(byName.get("harmony-secrets")?.secret?.secretName, "edge-harmony-secrets");
  assert.ok(byName.get("harmony-tmp")?.emptyDir);
  assert.equal(containers[0]!.image, "registry.example/app:1");
  assert.equal(containers[0]!.volumeMounts, undefined, "the app container is untouched");

  // Idempotent: a copy of the stored (already injected) pod is admitted without a second sidecar.
  const copy: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "copy-of-injected", namespace: SELECTED, labels: stored!.metadata!.labels! },
    spec: {
      containers: stored!.spec!.containers,
      initContainers: stored!.spec!.initContainers,
      volumes: stored!.spec!.volumes!,
    },
  };
  const again = await createPod(copy);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stored!.spec!.initContainers!.filter((c) => c.name === SIDECAR_NAME).length, 1);
  assert.ok(!again.stored!.spec!.containers.some((c) => c.name === SIDECAR_NAME));
  assert.equal(again.stored!.spec!.volumes!.filter((v) => v.name === "harmony-config").length, 1);
});

test("a Job's pod: the sidecar goes before the pod's own init containers, and restartPolicy Never is kept", async () => {
  const pod = appPod(SELECTED, "job-pod", { "harmony.runbeam.io/gateway": "edge" });
  pod.spec!.restartPolicy = "Never";
  pod.spec!.initContainers = [{ name: "migrate", image: "registry.example/migrate:1" }];
  const { code, stderr, stored } = await createPod(pod);
  assert.equal(code, 0, stderr);
  assert.deepEqual(
    stored!.spec!.initContainers?.map((c) => [c.name, c.restartPolicy]),
    [
      [SIDECAR_NAME, "Always"],
      ["migrate", undefined],
    ],
  );
  assert.equal(stored!.spec!.restartPolicy, "Never");
});

test("sidecar.native false: the data plane is injected as a plain container (clusters before 1.29)", async () => {
  const { code, stderr, stored } = await createPod(
    appPod(SELECTED, "legacy-sidecar", { "harmony.runbeam.io/gateway": "legacy" }),
  );
  assert.equal(code, 0, stderr);
  assert.deepEqual(
    stored!.spec!.containers.map((c) => c.name),
    ["app", SIDECAR_NAME],
  );
  assert.equal(stored!.spec!.initContainers, undefined);
  assert.equal(stored!.spec!.containers[1]!.restartPolicy, undefined);
  assert.equal(stored!.spec!.containers[1]!.startupProbe, undefined);
});

test("pods the webhook must leave alone are stored unchanged", async () => {
  const unchanged = (p: V1Pod) => {
    assert.deepEqual(
      p.spec!.containers.map((c) => c.name),
      ["app"],
    );
    assert.deepEqual(
      p.spec!.volumes!.map((v) => v.name),
      ["data"],
    );
  };
  const plain = await createPod(appPod(SELECTED, "no-label"));
  assert.equal(plain.code, 0, plain.stderr);
  unchanged(plain.stored!);

  // Same gateway name, but in a namespace outside --webhook-namespace-selector.
  const outside = await createPod(appPod(UNSELECTED, "not-selected", { "harmony.runbeam.io/gateway": "edge" }));
  assert.equal(outside.code, 0, outside.stderr);
  unchanged(outside.stored!);

  // A Deployment-mode gateway runs its own pods; labelling an app pod for it injects nothing, and says so.
  const classic = await createPod(appPod(SELECTED, "deployment-mode", { "harmony.runbeam.io/gateway": "classic" }));
  assert.equal(classic.code, 0, classic.stderr);
  unchanged(classic.stored!);
  assert.match(classic.stderr, /Warning: HarmonyGateway clinic\/classic is in Deployment mode/);

  // The operator's own gateway pods carry the gateway label too; the objectSelector keeps them out.
  const own = await createPod(
    appPod(SELECTED, "operator-owned", {
      "harmony.runbeam.io/gateway": "edge",
      "app.kubernetes.io/managed-by": "harmony-operator",
    }),
  );
  assert.equal(own.code, 0, own.stderr);
  unchanged(own.stored!);

  // Straight to the webhook: an unlabelled pod is allowed with no patch, the request uid echoed.
  const caPem = decode(await certSecret(), "ca.crt");
  const review = await postReview(caPem, {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "u-123",
      kind: { kind: "Pod" },
      operation: "CREATE",
      namespace: SELECTED,
      object: appPod(SELECTED, "x"),
    },
  });
  assert.equal(review.status, 200);
  assert.deepEqual(review.json, {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: { uid: "u-123", allowed: true },
  });
  assert.equal((await postReview(caPem, {}, "GET")).status, 405);
  assert.equal((await postReview(caPem, { kind: "Nope" })).status, 400);
});

test("a pod labelled for a gateway that does not exist is refused with a message saying so", async () => {
  const r = await createPod(appPod(SELECTED, "orphan", { "harmony.runbeam.io/gateway": "nope" }));
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    /admission webhook "sidecar\.harmony\.runbeam\.io" denied the request: HarmonyGateway clinic\/nope \(named by this pod's harmony\.runbeam\.io\/gateway label\) does not exist/,
  );
  const get = await cp.kubectl(["get", "pod", "orphan", "-n", SELECTED]);
  assert.notEqual(get.code, 0, "nothing was stored");
});

test("failurePolicy Ignore: with the operator down, a labelled pod is admitted without a sidecar", async () => {
  await stopOperator();
  const r = await createPod(appPod(SELECTED, "while-down-ignore", { "harmony.runbeam.io/gateway": "edge" }));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    r.stored!.spec!.containers.map((c) => c.name),
    ["app"],
  );
});

test("restart: the stored certificate is reused, the configuration follows the new flags", async () => {
  const before = await certSecret();
  const beforeCfg = await webhookConfig();
  await startOperator("Fail");
  const afterSecret = await certSecret();
  assert.equal(afterSecret.metadata?.resourceVersion, before.metadata?.resourceVersion, "the Secret was not rewritten");
  assert.equal(decode(afterSecret, "tls.crt"), decode(before, "tls.crt"));
  const served = await servedCertificate(decode(before, "ca.crt"));
  assert.equal(served.fingerprint256, new X509Certificate(decode(before, "tls.crt")).fingerprint256);
  const cfg = await webhookConfig();
  assert.equal(cfg.webhooks![0]!.clientConfig.caBundle, beforeCfg.webhooks![0]!.clientConfig.caBundle);
  assert.equal(cfg.webhooks![0]!.failurePolicy, "Fail");
  // (startOperator already saw a dry-run pod injected by the restarted webhook.)
  const r = await createPod(appPod(SELECTED, "after-restart", { "harmony.runbeam.io/gateway": "edge" }));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stored!.spec!.initContainers?.some((c) => c.name === SIDECAR_NAME));
});

test("failurePolicy Fail: with the operator down, a labelled pod is refused; others are not affected", async () => {
  await stopOperator();
  // The API server may still hold the previous failurePolicy for a moment after the restart.
  let n = 0;
  const r = await eventually("a labelled pod to be refused", async () => {
    const c = await createPod(appPod(SELECTED, `while-down-fail-${n++}`, { "harmony.runbeam.io/gateway": "edge" }));
    return c.code !== 0 ? c : undefined;
  });
  assert.match(r.stderr, /failed calling webhook "sidecar\.harmony\.runbeam\.io"/);
  const plain = await createPod(appPod(SELECTED, "unlabelled-while-down"));
  assert.equal(plain.code, 0, plain.stderr);
});
