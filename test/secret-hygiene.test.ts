/**
 * Secret hygiene against a real kube-apiserver: the rendered ConfigMap (readable with the built-in
 * `view` role) carries nothing computed from Secret values; the data plane's Secret volume is not
 * world-readable; and the operator reads only the Secrets gateways use, one GET at a time, never
 * listing or watching Secrets. Requests are seen through a logging proxy in front of the API server.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { startFaultProxy, type FaultProxy } from "./faultproxy.js";
import { ROOT, eventually as poll, sleep } from "../dataplane/test/helpers.js";

const NS = "clinic";
const API = "harmony.runbeam.io/v1alpha1";

let cp: ControlPlane;
let proxy: FaultProxy;
let operator: ChildProcess | undefined;
let log = "";

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${log.slice(-4000)}` });

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, "-o", "json"])) as T;

type ConfigMap = { data: Record<string, string> };
const configMap = () => getJson<ConfigMap>(["get", "configmap", "edge-harmony-config", "-n", NS]);
const PIPELINE_FILE = `pipeline.${NS}.api.toml`;

before(async () => {
  cp = await startControlPlane();
  await cp.installCrds();
  await kubectl(["create", "namespace", NS]);
  proxy = await startFaultProxy(cp);
  const items = [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "creds", namespace: NS },
      stringData: { user: "alice", pw: "hunter2" },
    },
    { apiVersion: "v1", kind: "Secret", metadata: { name: "unrelated", namespace: NS }, stringData: { x: "not ours" } },
    {
      apiVersion: API,
      kind: "HarmonyGateway",
      metadata: { name: "edge", namespace: NS },
      spec: { networks: [{ name: "web", port: 8080 }] },
    },
    {
      apiVersion: API,
      kind: "HarmonyEndpoint",
      metadata: { name: "api", namespace: NS },
      spec: { service: "http", pathPrefix: "/api" },
    },
    {
      apiVersion: API,
      kind: "HarmonyPipeline",
      metadata: { name: "api", namespace: NS },
      spec: {
        gatewayRef: { name: "edge" },
        endpoints: [{ name: "api" }],
        middleware: [
          {
            name: "auth",
            type: "basic_auth",
            secretOptions: [
              { option: "username", secretKeyRef: { name: "creds", key: "user" } },
              { option: "password", secretKeyRef: { name: "creds", key: "pw" } },
            ],
          },
        ],
        backends: [{ service: "http", url: "http://backend.clinic.svc:8080" }],
      },
    },
  ];
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
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
      "--secret-recheck-interval",
      "1s",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout!.setEncoding("utf8").on("data", (c: string) => (log += c));
  operator.stderr!.setEncoding("utf8").on("data", (c: string) => (log += c));
  await eventually("the pipeline in the ConfigMap", async () => {
    const r = await cp.kubectl(["get", "configmap", "edge-harmony-config", "-n", NS, "-o", "json"]);
    return r.code === 0 && (JSON.parse(r.stdout) as ConfigMap).data[PIPELINE_FILE] ? true : undefined;
  });
});

after(async () => {
  if (operator && operator.exitCode === null && operator.signalCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  await proxy?.close();
  await cp?.stop();
});

/** The digest the ConfigMap used to carry: unsalted sha256 over the mounted file names and values. */
function valueDigest(values: Record<string, string>): string {
  const h = createHash("sha256");
  for (const k of Object.keys(values).sort()) h.update(k).update("\0").update(values[k]!).update("\0");
  return h.digest("hex");
}

test("the ConfigMap carries no digest of Secret values, and a changed Secret still reloads the config", async () => {
  const files = (pw: string) => ({
    [`${NS}.api.middleware.auth.password`]: pw,
    [`${NS}.api.middleware.auth.username`]: "alice",
  });
  const before = await configMap();
  const text = Object.values(before.data).join("\n");
  assert.match(before.data[PIPELINE_FILE]!, /password_file = /, "the pipeline uses the Secret");
  assert.ok(!text.includes("hunter2"), "a Secret value in the ConfigMap");
  // Someone with `view` could test password guesses offline against this; it must not be there.
  assert.ok(!text.includes(valueDigest(files("hunter2"))), "a digest of the Secret values in the ConfigMap");
  assert.doesNotMatch(text, /# secrets sha256:/);

  await kubectl([
    "patch",
    "secret",
    "creds",
    "-n",
    NS,
    "--type",
    "merge",
    "-p",
    JSON.stringify({ stringData: { pw: "hunter3" } }),
  ]);
  const after = await eventually("a new config after the Secret changed", async () => {
    const c = await configMap();
    return c.data["config.toml"] !== before.data["config.toml"] ? c : undefined;
  });
  const mounted = await getJson<{ data: Record<string, string> }>(["get", "secret", "edge-harmony-secrets", "-n", NS]);
  assert.equal(Buffer.from(mounted.data[`${NS}.api.middleware.auth.password`]!, "base64").toString(), "hunter3");
  const afterText = Object.values(after.data).join("\n");
  assert.ok(!afterText.includes(valueDigest(files("hunter3"))), "a digest of the new values in the ConfigMap");
  assert.ok(!afterText.includes("hunter3"));
});

test("the data plane's Secret volume is 0440, readable through the pod's fsGroup", async () => {
  const d = await eventually("the gateway Deployment", async () => {
    const r = await cp.kubectl(["get", "deployment", "edge-harmony", "-n", NS, "-o", "json"]);
    return r.code === 0
      ? (JSON.parse(r.stdout) as {
          spec: {
            template: {
              spec: {
                securityContext: { fsGroup?: number; runAsGroup?: number };
                volumes: { name: string; secret?: { secretName: string; defaultMode?: number } }[];
              };
            };
          };
        })
      : undefined;
  });
  const pod = d.spec.template.spec;
  const vol = pod.volumes.find((v) => v.secret);
  assert.equal(vol?.secret?.secretName, "edge-harmony-secrets");
  assert.equal(vol?.secret?.defaultMode, 0o440, `mode ${vol?.secret?.defaultMode?.toString(8)}`);
  assert.equal(pod.securityContext.fsGroup, pod.securityContext.runAsGroup, "the data plane's group owns the files");
});

test("the operator reads only the Secrets gateways use: GETs by name, never a list or a watch", async () => {
  // Enough time for every informer to have listed and watched, and for rechecks to have run.
  await sleep(1500);
  const secretRequests = proxy.log.filter((l) => /\/api\/v1\/(namespaces\/[^/]+\/)?secrets([/?]|$)/.test(l));
  const collection = secretRequests.filter((l) => /\/secrets(\?|$)/.test(l.split(" ")[1] ?? ""));
  assert.deepEqual(collection, [], "Secrets listed or watched");
  const named = new Set(secretRequests.map((l) => /\/secrets\/([^/?]+)/.exec(l)?.[1]));
  assert.ok(named.has("creds"), [...named].join(", "));
  assert.ok(!named.has("unrelated"), "read a Secret no gateway uses");
  assert.ok(
    // Besides what pipelines name: the gateway's own Secrets, by name (config secrets, network files).
    [...named].every((n) => ["creds", "edge-harmony-secrets", "edge-harmony-net"].includes(n!)),
    [...named].join(", "),
  );
  assert.doesNotMatch(log, /Reconcile failed|Watch failed/);
});
