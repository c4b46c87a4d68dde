/**
 * The test control plane itself (test/controlplane): a real etcd, kube-apiserver and
 * kube-controller-manager on loopback, driven with real kubectl and helm.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { eventually as poll } from "../dataplane/test/helpers.js";

const exec = promisify(execFile);
let cp: ControlPlane;
let startMs = 0;

before(async () => {
  const t0 = Date.now();
  cp = await startControlPlane({ controllerManager: true });
  startMs = Date.now() - t0;
});

after(async () => {
  await cp?.stop();
});

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const eventually = <T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
): Promise<T> => poll(what, fn, { timeoutMs, intervalMs: 250 });

const configMap = (ns: string, name: string, ownerUid?: string) =>
  JSON.stringify({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name,
      namespace: ns,
      ...(ownerUid ? { ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: ownerUid }] } : {}),
    },
    data: { key: name },
  });

/** Creates `owner` and `child` (owned by `owner`), deletes `owner` and waits until `child` is collected. */
async function assertGarbageCollected(ns: string): Promise<number> {
  await kubectl(["create", "-f", "-"], configMap(ns, "owner"));
  const uid = await kubectl(["get", "configmap", "owner", "-n", ns, "-o", "jsonpath={.metadata.uid}"]);
  assert.match(uid, /^[0-9a-f-]{36}$/);
  await kubectl(["create", "-f", "-"], configMap(ns, "child", uid));
  const child = JSON.parse(await kubectl(["get", "configmap", "child", "-n", ns, "-o", "json"])) as {
    metadata: { ownerReferences?: { uid: string }[] };
  };
  assert.equal(child.metadata.ownerReferences?.[0]?.uid, uid);

  const t0 = Date.now();
  await kubectl(["delete", "configmap", "owner", "-n", ns, "--wait=true"]);
  await eventually("the garbage collector to delete configmap child", async () => {
    const r = await cp.kubectl(["get", "configmap", "child", "-n", ns, "-o", "name"]);
    if (r.code !== 0 && /NotFound|not found/.test(r.stderr)) return true;
    return undefined;
  });
  return Date.now() - t0;
}

test("kube-apiserver is up at the built version and kubectl lists the system namespaces", async (t) => {
  t.diagnostic(`control plane (etcd, kube-apiserver, kube-controller-manager) ready in ${startMs} ms`);
  const built = (await exec(join(cp.binDir, "kube-apiserver"), ["--version"])).stdout.trim(); // "Kubernetes v1.34.3"
  const version = JSON.parse(await kubectl(["version", "-o", "json"])) as { serverVersion?: { gitVersion?: string } };
  assert.match(version.serverVersion?.gitVersion ?? "", /^v1\.\d+\.\d+$/, "version ldflags were not applied");
  assert.equal(`Kubernetes ${version.serverVersion?.gitVersion}`, built);

  const names = await eventually("default and kube-system namespaces", async () => {
    const out = await kubectl(["get", "namespaces", "-o", "name"]);
    return out.includes("namespace/default") && out.includes("namespace/kube-system") ? out : undefined;
  });
  assert.match(names, /^namespace\/default$/m);
  assert.match(names, /^namespace\/kube-system$/m);
  assert.match(await kubectl(["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"]), /system:masters/);
});

test("kubectl get --watch streams ADDED and DELETED events from etcd", async () => {
  await kubectl(["create", "namespace", "watch"]);
  await kubectl(["create", "configmap", "first", "-n", "watch", "--from-literal=k=v"]);
  const watch = spawn(
    "kubectl",
    ["--kubeconfig", cp.kubeconfig, "get", "configmaps", "-n", "watch", "--watch", "--output-watch-events"],
    { env: cp.env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  watch.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  watch.stderr.setEncoding("utf8").on("data", (c: string) => (out += c));
  try {
    await eventually("the initial list in the watch", () => (/^ADDED\s+first\s/m.test(out) ? true : undefined), 20_000);
    await kubectl(["create", "configmap", "second", "-n", "watch", "--from-literal=k=v"]);
    await eventually("ADDED second", () => (/^ADDED\s+second\s/m.test(out) ? true : undefined), 20_000);
    await kubectl(["delete", "configmap", "second", "-n", "watch"]);
    await eventually("DELETED second", () => (/^DELETED\s+second\s/m.test(out) ? true : undefined), 20_000);
  } finally {
    watch.kill();
  }
});

test("kube-controller-manager garbage-collects a ConfigMap whose owner is deleted", async (t) => {
  await kubectl(["create", "namespace", "gc"]);
  const ms = await assertGarbageCollected("gc");
  t.diagnostic(`child collected ${ms} ms after its owner was deleted`);
});

const WIDGET_CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget, listKind: WidgetList }
  versions:
    - name: v1
      served: true
      storage: true
      subresources: { status: {} }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [replicas, maxReplicas]
              properties:
                replicas: { type: integer, minimum: 0 }
                maxReplicas: { type: integer, minimum: 0 }
              x-kubernetes-validations:
                - rule: "self.replicas <= self.maxReplicas"
                  message: "replicas must not exceed maxReplicas"
`;
const widget = (name: string, replicas: number, maxReplicas: number) =>
  JSON.stringify({
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: { name, namespace: "default" },
    spec: { replicas, maxReplicas },
  });

test("a CRD applied server-side becomes Established and enforces its CEL rule", async () => {
  await kubectl(["apply", "--server-side", "-f", "-"], WIDGET_CRD);
  await kubectl(["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=60s"]);
  // Discovery can trail Established by a moment.
  await eventually("widgets in discovery", async () =>
    (await kubectl(["api-resources", "--api-group=example.com", "-o", "name"])).includes("widgets.example.com")
      ? true
      : undefined,
  );

  await kubectl(["apply", "--server-side", "-f", "-"], widget("ok", 2, 3));
  const bad = await cp.kubectl(["apply", "--server-side", "-f", "-"], widget("bad", 5, 3));
  assert.notEqual(bad.code, 0, "a Widget breaking the CEL rule was accepted");
  assert.match(bad.stderr, /replicas must not exceed maxReplicas/);
  assert.match(bad.stderr, /Invalid/);
  const gone = await cp.kubectl(["get", "widget", "bad", "-n", "default"]);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /NotFound|not found/);
});

test("after restartApiserver() the data is still there and the controller manager reconnects", async (t) => {
  const before = JSON.parse(await kubectl(["get", "widget", "ok", "-n", "default", "-o", "json"])) as {
    metadata: { uid: string };
  };
  const t0 = Date.now();
  await cp.restartApiserver();
  t.diagnostic(`kube-apiserver restarted in ${Date.now() - t0} ms`);

  const afterRestart = JSON.parse(await kubectl(["get", "widget", "ok", "-n", "default", "-o", "json"])) as {
    metadata: { uid: string };
    spec: { replicas: number; maxReplicas: number };
  };
  assert.equal(afterRestart.metadata.uid, before.metadata.uid);
  assert.deepEqual(afterRestart.spec, { replicas: 2, maxReplicas: 3 });
  assert.match(await kubectl(["get", "widgets", "-n", "default"]), /^ok\s/m);
  const rejected = await cp.kubectl(["apply", "--server-side", "-f", "-"], widget("bad", 9, 1));
  assert.match(rejected.stderr, /replicas must not exceed maxReplicas/);

  await kubectl(["create", "namespace", "gc-after-restart"]);
  await assertGarbageCollected("gc-after-restart");
});

test("helm from the bin dir is v3 and installs a chart into the cluster", async () => {
  const helm = join(cp.binDir, "helm");
  const { stdout } = await exec(helm, ["version", "--short"], { env: cp.env });
  assert.match(stdout, /^v3\.\d+/);

  const dir = mkdtempSync(join(tmpdir(), "harmony-helm-"));
  try {
    mkdirSync(join(dir, "chart", "templates"), { recursive: true });
    writeFileSync(join(dir, "chart", "Chart.yaml"), "apiVersion: v2\nname: probe\nversion: 0.1.0\n");
    writeFileSync(join(dir, "chart", "values.yaml"), "greeting: hello\n");
    writeFileSync(
      join(dir, "chart", "templates", "cm.yaml"),
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-probe\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    );
    const env = {
      ...cp.env,
      HELM_CACHE_HOME: join(dir, "cache"),
      HELM_CONFIG_HOME: join(dir, "config"),
      HELM_DATA_HOME: join(dir, "data"),
    };
    await exec(helm, ["install", "demo", join(dir, "chart"), "--namespace", "default", "--wait", "--timeout", "60s"], {
      env,
    });
    assert.equal(
      await kubectl(["get", "configmap", "demo-probe", "-n", "default", "-o", "jsonpath={.data.greeting}"]),
      "hello",
    );
    const list = await exec(helm, ["list", "--namespace", "default", "-o", "json"], { env });
    assert.match(list.stdout, /"name":"demo"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
