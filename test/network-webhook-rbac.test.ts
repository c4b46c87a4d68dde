/**
 * Least privilege at admission: the sidecar webhook injects a network member gateway's files
 * without reading its network Secret (which holds the gateway's network key). A real control
 * plane and operator make the gateway's config and network Secret; then the webhook runs as an
 * identity whose RBAC grants what admission needs (the gateway, its config ConfigMap, the webhook's
 * own certificate Secret and configuration) and no other Secret, and answers a real
 * AdmissionReview over HTTPS with the network volume in its patch.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import winston from "winston";
import { eventually as poll, freePort, stopAll, tempDir } from "../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, served, startCluster, type Cluster } from "./network-env.js";
import { SidecarWebhook } from "../operator/src/webhook/server.js";
import { kubeClients } from "../operator/src/provider/kube.js";
import { WEBHOOK_PATH } from "../operator/src/webhook/config.js";

const USER = "harmony-webhook-only";
const CERT_SECRET = "restricted-webhook-cert";
let A: Cluster;
const stops: (() => unknown)[] = [];

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>) =>
  poll(what, fn, { timeoutMs: 60_000, context: () => `operator log:\n${A?.log().slice(-3000)}` });

/** What the webhook may do: read gateways and their config, keep its own certificate and configuration. */
const rbac = [
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: USER },
    rules: [
      { apiGroups: ["harmony.runbeam.io"], resources: ["harmonygateways"], verbs: ["get"] },
      { apiGroups: [""], resources: ["configmaps"], verbs: ["get"] },
      {
        apiGroups: ["admissionregistration.k8s.io"],
        resources: ["mutatingwebhookconfigurations"],
        verbs: ["get", "create", "patch"],
      },
    ],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: USER },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: USER },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: USER }],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: USER, namespace: OPERATOR_NS },
    // As the chart's webhook Role: create (a POST names no object), then its own Secret by name.
    rules: [
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      { apiGroups: [""], resources: ["secrets"], resourceNames: [CERT_SECRET], verbs: ["get", "update"] },
    ],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: USER, namespace: OPERATOR_NS },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: USER },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: USER }],
  },
];

before(async () => {
  const netPort = await freePort();
  A = await startCluster(
    "cluster-w",
    [],
    async (_cp, kubectl) => void (await kubectl(["create", "namespace", "org-a"])),
  );
  stops.push(() => A.stop());
  await A.apply(
    cr("HarmonyNetwork", undefined, "hospitals", { domain: "hospitals.example", members: { orgs: ["org-a"] } }),
    cr(
      "HarmonyGateway",
      "org-a",
      "side",
      { mode: "Sidecar", networks: [{ name: "harmony", port: netPort, bindAddress: "127.0.0.1" }] },
      { annotations: { "harmony.runbeam.io/network-address": "app.org-a.svc" } },
    ),
    ...served("org-a", "side", "fhir", { service: "fhir", pathPrefix: "/org-a/fhir" }),
    ...rbac,
  );
  await eventually("network Secret written", () => A.secretKey("org-a", "side-harmony-net", "hospitals.tls.key"));
  await eventually("config names the network", async () => {
    const cm = await A.get<{ data: Record<string, string> }>("/api/v1/namespaces/org-a/configmaps/side-harmony-config");
    return cm?.data["config.toml"]?.includes("[harmony_networks.hospitals]");
  });
});

after(() => stopAll(stops));

test("the webhook injects a member gateway's network files as an identity that cannot read its network Secret", async () => {
  const can = async (...args: string[]) => (await A.cp.kubectl(["auth", "can-i", ...args, "--as", USER])).code === 0;
  assert.equal(await can("get", "secret/side-harmony-net", "-n", "org-a"), false, "the identity reads the key");
  assert.equal(await can("get", "secret/harmony-network-hospitals-ca", "-n", OPERATOR_NS), false);
  assert.equal(await can("get", "configmap/side-harmony-config", "-n", "org-a"), true);

  // The admin's token, every request impersonating the restricted user.
  const kubeconfig = join(tempDir("harmony-webhook-rbac-"), "kubeconfig");
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "c",
          cluster: { server: A.cp.server, "certificate-authority-data": Buffer.from(A.cp.caPem).toString("base64") },
        },
      ],
      users: [{ name: "u", user: { token: A.cp.token, as: USER } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
    { mode: 0o600 },
  );
  const port = await freePort();
  const webhook = new SidecarWebhook({
    kube: kubeClients(kubeconfig),
    logger: winston.createLogger({ silent: true }),
    port,
    configName: "restricted-injector",
    certSecret: { namespace: OPERATOR_NS, name: CERT_SECRET },
    failurePolicy: "Ignore",
    // The API server never calls it (no namespace has this label): the review below is sent directly.
    namespaceSelector: { matchLabels: { "harmony-test": "never" } },
    target: { url: `https://127.0.0.1:${port}${WEBHOOK_PATH}` },
    onMissingGateway: "deny",
    defaultImage: "registry.example/harmony-dataplane:test",
  });
  await webhook.start();
  stops.push(() => webhook.stop());
  const ca = (await A.secretKey(OPERATOR_NS, CERT_SECRET, "ca.crt"))!;

  const review = {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "0b5e6f1c-1111-4a2b-9c3d-000000000001",
      kind: { group: "", version: "v1", kind: "Pod" },
      operation: "CREATE",
      namespace: "org-a",
      object: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "app-1", namespace: "org-a", labels: { "harmony.runbeam.io/gateway": "side" } },
        spec: { containers: [{ name: "app", image: "registry.example/app:1" }] },
      },
    },
  };
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: WEBHOOK_PATH,
        method: "POST",
        ca,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(review));
  });
  assert.equal(answer.status, 200, answer.body);
  const response = (JSON.parse(answer.body) as { response: { allowed: boolean; patch?: string } }).response;
  assert.equal(response.allowed, true);
  const patch = JSON.parse(Buffer.from(response.patch!, "base64").toString("utf8")) as {
    path: string;
    value: unknown;
  }[];
  type Volume = { secret?: { secretName: string; items?: { path: string }[] } };
  const volumes = patch
    .filter((p) => p.path.startsWith("/spec/volumes"))
    .flatMap((p): Volume[] => (Array.isArray(p.value) ? (p.value as Volume[]) : [p.value as Volume]));
  const net = volumes.find((v) => v.secret?.secretName === "side-harmony-net");
  assert.ok(net, `the network Secret is mounted: ${JSON.stringify(volumes)}`);
  assert.deepEqual(net.secret!.items!.map((i) => i.path).sort(), [
    "hospitals/ca.crt",
    "hospitals/directory.json",
    "hospitals/export.jws",
    "hospitals/tls.crt",
    "hospitals/tls.key",
  ]);
});
