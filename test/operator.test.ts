/**
 * The operator against a real kube-apiserver (test/controlplane): CRDs through kubectl, reconcile
 * to ConfigMaps with status on every resource, no writes in a steady state, garbage collection,
 * and end to end through a real data plane fed the way the kubelet feeds a pod.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import TOML from "@iarna/toml";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { POD_READY, startSyncer } from "./syncer.js";
import {
  ROOT,
  eventually as poll,
  freePort,
  http,
  sleep,
  startDataplane,
  startUpstream,
  tempDir,
} from "../dataplane/test/helpers.js";

let cp: ControlPlane;
let operator: ChildProcess;
let operatorLog = "";

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${operatorLog.slice(-4000)}` });

const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, "-o", "json"])) as T;
type Cond = { type: string; status: string; reason: string; message: string };
const condition = async (kind: string, ns: string, name: string, type: string) => {
  const o = await getJson<{
    status?: { conditions?: Cond[]; observedGeneration?: number };
    metadata: { generation: number };
  }>(["get", kind, name, "-n", ns]);
  return {
    c: o.status?.conditions?.find((c) => c.type === type),
    observed: o.status?.observedGeneration,
    generation: o.metadata.generation,
  };
};

before(async () => {
  cp = await startControlPlane({ controllerManager: true });
  await cp.installCrds();
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
      "--log-level",
      "debug",
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  operator.stdout!.setEncoding("utf8").on("data", (c: string) => (operatorLog += c));
  operator.stderr!.setEncoding("utf8").on("data", (c: string) => (operatorLog += c));
});

after(async () => {
  if (operator && operator.exitCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  await cp?.stop();
});

test("kubectl explain, printer columns and CEL rules work against the real API server", async () => {
  // The OpenAPI document catches up with a new CRD a moment after it is Established.
  const explain = await eventually("kubectl explain", () => kubectl(["explain", "harmonypipelines.spec.gatewayRef"]));
  assert.match(explain, /The gateway that serves this pipeline/);
  await kubectl(["create", "namespace", "cel"]);
  const bad = await cp.kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyEndpoint",
      metadata: { name: "nopath", namespace: "cel" },
      spec: { service: "http" },
    }),
  );
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /pathPrefix is required for HTTP-based services/);
  const clash = await cp.kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyGateway",
      metadata: { name: "g", namespace: "cel" },
      spec: { networks: [{ name: "web", port: 9090 }], management: { port: 9090 } },
    }),
  );
  assert.notEqual(clash.code, 0);
  assert.match(clash.stderr, /management.port must differ from every network port/);
  const enumBad = await cp.kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyEndpoint",
      metadata: { name: "x", namespace: "cel" },
      spec: { service: "gopher", pathPrefix: "/x" },
    }),
  );
  assert.match(enumBad.stderr, /Unsupported value: "gopher"/);
});

test("reconcile: ConfigMap, status on every resource, steady state without writes, GC on delete, end to end", async (t) => {
  const upstream = await startUpstream((req, res) => res.end(`upstream ${req.method} ${req.url}`));
  t.after(() => upstream.close());
  const webPort = await freePort();
  const mgmtPort = await freePort();
  const ns = "clinic";
  await kubectl(["create", "namespace", ns]);
  const docs = [
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyGateway",
      metadata: { name: "edge", namespace: ns },
      spec: {
        replicas: 1,
        networks: [{ name: "web", port: webPort, bindAddress: "127.0.0.1" }],
        management: { port: mgmtPort },
      },
    },
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyEndpoint",
      metadata: { name: "api", namespace: ns },
      spec: { service: "http", pathPrefix: "/api" },
    },
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyEndpoint",
      metadata: { name: "other", namespace: ns },
      spec: { service: "http", pathPrefix: "/other" },
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "creds", namespace: ns },
      stringData: { token: "s3cret-token-value" },
    },
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyPipeline",
      metadata: { name: "good", namespace: ns },
      spec: {
        gatewayRef: { name: "edge" },
        endpoints: [{ name: "api" }],
        middleware: [
          { name: "p", type: "passthru" },
          {
            // Tells the upstream about each request, in the background: a real option from a Secret.
            name: "audit",
            type: "webhook",
            options: { endpoint: `${upstream.url}/audit`, auth_type: "bearer" },
            secretOptions: [{ option: "token", secretKeyRef: { name: "creds", key: "token" } }],
          },
        ],
        backends: [{ service: "http", url: upstream.url }],
      },
    },
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyPipeline",
      metadata: { name: "bad", namespace: ns },
      spec: {
        gatewayRef: { name: "edge" },
        endpoints: [{ name: "other" }],
        middleware: [{ name: "m", type: "carrier_pigeon" }],
        backends: [{ service: "http", url: upstream.url }],
      },
    },
    {
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyPipeline",
      metadata: { name: "orphan", namespace: ns },
      spec: {
        gatewayRef: { name: "nope" },
        endpoints: [{ name: "api" }],
        backends: [{ service: "http", url: upstream.url }],
      },
    },
  ];
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: docs }));

  // Informers see the resources in some order: the first render may precede the pipelines. Wait
  // for the converged state.
  const cm = await eventually("the gateway's ConfigMap with the good pipeline", async () => {
    const c = await getJson<{
      data: Record<string, string>;
      metadata: {
        resourceVersion: string;
        ownerReferences: { kind: string; name: string }[];
        labels: Record<string, string>;
      };
    }>(["get", "configmap", "edge-harmony-config", "-n", ns]);
    return c.data["pipeline.clinic.good.toml"] ? c : undefined;
  });
  assert.deepEqual(Object.keys(cm.data).sort(), ["config.toml", "pipeline.clinic.good.toml"]);
  const pipelineDoc = TOML.parse(cm.data["pipeline.clinic.good.toml"]!) as { pipelines: Record<string, unknown> };
  assert.ok(pipelineDoc.pipelines["clinic.good"]);
  assert.equal(cm.metadata.ownerReferences[0]!.kind, "HarmonyGateway");
  assert.equal(cm.metadata.labels["app.kubernetes.io/managed-by"], "harmony-operator");
  // Secret material goes to the gateway's Secret, mounted as files; the ConfigMap only names the path.
  assert.ok(!JSON.stringify(cm.data).includes("s3cret-token-value"));
  assert.match(
    cm.data["pipeline.clinic.good.toml"]!,
    /token_file = "\.\.\/secrets\/clinic\.good\.middleware\.audit\.token"/,
  );
  const secret = await getJson<{ data: Record<string, string> }>(["get", "secret", "edge-harmony-secrets", "-n", ns]);
  assert.equal(
    Buffer.from(secret.data["clinic.good.middleware.audit.token"]!, "base64").toString(),
    "s3cret-token-value",
  );
  // Deployment mode: the data plane's Deployment and Service, config mounted as directories.
  const deploy = await eventually("the Deployment", () =>
    getJson<{
      spec: {
        template: {
          spec: {
            volumes: { name: string; configMap?: { name: string } }[];
            containers: { volumeMounts: { subPath?: string }[] }[];
          };
        };
      };
    }>(["get", "deployment", "edge-harmony", "-n", ns]),
  );
  assert.equal(
    deploy.spec.template.spec.volumes.find((v) => v.name === "config")?.configMap?.name,
    "edge-harmony-config",
  );
  assert.ok(deploy.spec.template.spec.containers[0]!.volumeMounts.every((m) => m.subPath === undefined));
  assert.ok((await cp.kubectl(["get", "service", "edge-harmony", "-n", ns])).code === 0);

  const bad = await eventually("the bad pipeline's status", async () => {
    const r = await condition("harmonypipeline", ns, "bad", "Accepted");
    return r.c?.status === "False" ? r : undefined;
  });
  assert.equal(bad.c!.reason, "UnsupportedValue");
  assert.match(bad.c!.message, /unknown middleware type "carrier_pigeon"/);
  assert.equal(bad.observed, bad.generation);
  const orphan = await eventually(
    "the orphan's status",
    async () => (await condition("harmonypipeline", ns, "orphan", "Accepted")).c,
  );
  assert.equal(orphan.reason, "GatewayNotFound");
  const programmed = await eventually("gateway Programmed", async () => {
    const r = await condition("harmonygateway", ns, "edge", "Programmed");
    return r.c?.status === "True" ? r.c : undefined;
  });
  assert.match(programmed.message, /with 1 pipeline\(s\)/);
  const events = await kubectl(["get", "events", "-n", ns, "-o", "json"]);
  assert.match(events, /UnsupportedValue/);
  const table = await kubectl(["get", "harmony", "-n", ns]);
  assert.match(table, /harmonypipeline\.harmony\.runbeam\.io\/bad\s+False\s+UnsupportedValue/);

  // End to end: a data plane fed from the ConfigMap and the Secret the kubelet way (side by side,
  // as the pod mounts them); a Pod object tells the operator where it is.
  const mount = tempDir();
  const dir = join(mount, "config");
  const kc = (args: string[]) => spawn("kubectl", ["--kubeconfig", cp.kubeconfig, ...args], { env: cp.env });
  const syncer = startSyncer(kc, ns, "edge-harmony-config", dir);
  const secretSyncer = startSyncer(kc, ns, "edge-harmony-secrets", join(mount, "secrets"), "secret");
  t.after(() => syncer.stop());
  t.after(() => secretSyncer.stop());
  await eventually("the first sync", () =>
    Promise.resolve((syncer.swaps() > 0 && secretSyncer.swaps() > 0) || undefined),
  );
  const dp = await startDataplane(join(dir, "config.toml"), { HARMONY_POLL_MS: "200" });
  t.after(() => dp.stop());
  const served = await http(`http://127.0.0.1:${webPort}/api/patients?id=7`);
  assert.equal(served.status, 200);
  assert.equal(served.text, "upstream GET /patients?id=7");

  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "edge-pod",
        namespace: ns,
        labels: { "harmony.runbeam.io/gateway": "edge", "app.kubernetes.io/name": "harmony-dataplane" },
      },
      spec: { containers: [{ name: "dataplane", image: "harmony" }] },
    }),
  );
  await kubectl([
    "patch",
    "pod",
    "edge-pod",
    "-n",
    ns,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status: { ...POD_READY, conditions: [{ type: "Ready", status: "False" }] } }),
  ]);
  // Running and serving the config, but not yet Ready to the kubelet: the Service sends it nothing,
  // so the gateway is not Ready either.
  await sleep(3000);
  const notYet = await condition("harmonygateway", ns, "edge", "Ready");
  assert.equal(notYet.c?.status, "False", notYet.c?.message);
  assert.match(notYet.c?.message ?? "", /^0\/1 pods serving config/);
  await kubectl([
    "patch",
    "pod",
    "edge-pod",
    "-n",
    ns,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status: POD_READY }),
  ]);
  const ready = await eventually("gateway Ready", async () => {
    const r = await condition("harmonygateway", ns, "edge", "Ready");
    return r.c?.status === "True" ? r.c : undefined;
  });
  assert.match(ready.message, /^1\/1 pods serving config [0-9a-f]{12}$/);

  // Edit a CR: the data plane serves the change and Ready reports the new hash.
  await kubectl([
    "patch",
    "harmonyendpoint",
    "api",
    "-n",
    ns,
    "--type=merge",
    "-p",
    JSON.stringify({ spec: { pathPrefix: "/v2" } }),
  ]);
  await eventually(
    "the data plane to serve /v2",
    async () => (await http(`http://127.0.0.1:${webPort}/v2/x`)).status === 200 || undefined,
  );
  assert.equal((await http(`http://127.0.0.1:${webPort}/api/x`)).status, 404);
  const hash = (await getJson<{ status: { configHash: string } }>(["get", "harmonygateway", "edge", "-n", ns])).status
    .configHash;
  await eventually("Ready for the new hash", async () => {
    const r = await condition("harmonygateway", ns, "edge", "Ready");
    return r.c?.status === "True" && r.c.message.includes(hash.slice(0, 12)) ? true : undefined;
  });

  // Steady state: nothing changes, nothing is written.
  const rv = (
    await getJson<{ metadata: { resourceVersion: string } }>(["get", "configmap", "edge-harmony-config", "-n", ns])
  ).metadata.resourceVersion;
  const gwRv = (await getJson<{ metadata: { resourceVersion: string } }>(["get", "harmonygateway", "edge", "-n", ns]))
    .metadata.resourceVersion;
  await sleep(4000);
  assert.equal(
    (await getJson<{ metadata: { resourceVersion: string } }>(["get", "configmap", "edge-harmony-config", "-n", ns]))
      .metadata.resourceVersion,
    rv,
  );
  assert.equal(
    (await getJson<{ metadata: { resourceVersion: string } }>(["get", "harmonygateway", "edge", "-n", ns])).metadata
      .resourceVersion,
    gwRv,
  );

  // Delete the gateway: its children are garbage-collected. The owner reference is what makes that
  // happen; the collector itself is kube-controller-manager's, which learns a CRD's kind on its own
  // discovery resync (30 s) and backs off while it cannot map it, hence the long wait.
  const owners = (
    await getJson<{ metadata: { ownerReferences?: { kind: string; name: string }[] } }>([
      "get",
      "configmap",
      "edge-harmony-config",
      "-n",
      ns,
    ])
  ).metadata.ownerReferences;
  assert.deepEqual(
    owners?.map((o) => `${o.kind}/${o.name}`),
    ["HarmonyGateway/edge"],
  );
  await kubectl(["delete", "harmonygateway", "edge", "-n", ns, "--wait=true"]);
  await eventually(
    "the ConfigMap to be collected",
    async () => {
      const r = await cp.kubectl(["get", "configmap", "edge-harmony-config", "-n", ns]);
      return r.code !== 0 && /NotFound/.test(r.stderr) ? true : undefined;
    },
    180_000,
  );
});

test("an all-invalid render never replaces a good config; an oversized one is refused with a reason", async () => {
  const ns = "guard";
  await kubectl(["create", "namespace", ns]);
  const pipeline = (extra: Record<string, unknown>) =>
    JSON.stringify({
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyPipeline",
      metadata: { name: "only", namespace: ns },
      spec: {
        gatewayRef: { name: "gw" },
        endpoints: [{ name: "ep" }],
        backends: [{ service: "http", url: "http://127.0.0.1:1", ...extra }],
      },
    });
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        {
          apiVersion: "harmony.runbeam.io/v1alpha1",
          kind: "HarmonyGateway",
          metadata: { name: "gw", namespace: ns },
          spec: { networks: [{ name: "web", port: 8080 }] },
        },
        {
          apiVersion: "harmony.runbeam.io/v1alpha1",
          kind: "HarmonyEndpoint",
          metadata: { name: "ep", namespace: ns },
          spec: { service: "http", pathPrefix: "/x" },
        },
      ],
    }),
  );
  await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], pipeline({}));
  const good = await eventually("the first config", async () => {
    const c = await getJson<{ data: Record<string, string>; metadata: { resourceVersion: string } }>([
      "get",
      "configmap",
      "gw-harmony-config",
      "-n",
      ns,
    ]);
    return c.data["pipeline.guard.only.toml"] ? c : undefined;
  });

  // The only pipeline turns invalid: the old config stays, and the gateway says why.
  await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], pipeline({ options: { retries: "many" } }));
  const kept = await eventually("Programmed=False NoValidPipelines", async () => {
    const r = await condition("harmonygateway", ns, "gw", "Programmed");
    return r.c?.reason === "NoValidPipelines" ? r.c : undefined;
  });
  assert.equal(kept.status, "False");
  const after = await getJson<{ data: Record<string, string>; metadata: { resourceVersion: string } }>([
    "get",
    "configmap",
    "gw-harmony-config",
    "-n",
    ns,
  ]);
  assert.equal(after.metadata.resourceVersion, good.metadata.resourceVersion, "the good config was not replaced");
  const bad = await condition("harmonypipeline", ns, "only", "Accepted");
  assert.equal(bad.c?.reason, "InvalidOptions");
  assert.match(bad.c.message, /options\.retries: must be integer/);

  // A render beyond the ConfigMap limit is not written either.
  await kubectl(
    ["apply", "--server-side", "--force-conflicts", "-f", "-"],
    pipeline({ options: { headers: { "x-padding": "p".repeat(1_100_000) } } }),
  );
  const big = await eventually("Programmed=False ConfigMapTooLarge", async () => {
    const r = await condition("harmonygateway", ns, "gw", "Programmed");
    return r.c?.reason === "ConfigMapTooLarge" ? r.c : undefined;
  });
  assert.match(big.message, /the limit is \d+/);
  assert.equal(
    (await getJson<{ metadata: { resourceVersion: string } }>(["get", "configmap", "gw-harmony-config", "-n", ns]))
      .metadata.resourceVersion,
    good.metadata.resourceVersion,
  );
});

test("endpoint status: the data plane's verdict and its users; a gateway edit re-renders and rolls the Deployment", async () => {
  const ns = "edits";
  await kubectl(["create", "namespace", ns]);
  const cr = (kind: string, name: string, spec: Record<string, unknown>) => ({
    apiVersion: "harmony.runbeam.io/v1alpha1",
    kind,
    metadata: { name, namespace: ns },
    spec,
  });
  const pipeline = (name: string, endpoint: string) =>
    cr("HarmonyPipeline", name, {
      gatewayRef: { name: "gw" },
      endpoints: [{ name: endpoint }],
      backends: [{ service: "http", url: "http://127.0.0.1:1" }],
    });
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        cr("HarmonyGateway", "gw", { networks: [{ name: "web", port: 8080 }] }),
        cr("HarmonyEndpoint", "shared", { service: "http", pathPrefix: "/shared" }),
        cr("HarmonyEndpoint", "broken", { service: "http", pathPrefix: "/broken", methods: [] }),
        pipeline("one", "shared"),
        pipeline("two", "broken"),
      ],
    }),
  );
  const shared = await eventually("endpoint shared Accepted", async () => {
    const r = await condition("harmonyendpoint", ns, "shared", "Accepted");
    return r.c?.status === "True" ? r : undefined;
  });
  assert.equal(shared.observed, shared.generation);
  assert.equal(shared.c!.message, "http endpoint accepted");
  const broken = await eventually("endpoint broken rejected", async () => {
    const r = await condition("harmonyendpoint", ns, "broken", "Accepted");
    return r.c?.status === "False" ? r.c : undefined;
  });
  assert.equal(broken.reason, "InvalidOptions");
  assert.equal(broken.message, "spec.methods: must NOT have fewer than 1 items");
  const usedBy = async (name: string) =>
    (await getJson<{ status?: { pipelines?: number } }>(["get", "harmonyendpoint", name, "-n", ns])).status?.pipelines;
  await eventually("shared used by one pipeline", async () => ((await usedBy("shared")) === 1 ? true : undefined));

  // Pipeline two moves from broken to shared: both endpoints' counts follow, the dropped one included.
  await kubectl(["apply", "-f", "-"], JSON.stringify(pipeline("two", "shared")));
  await eventually("shared used by two pipelines", async () => ((await usedBy("shared")) === 2 ? true : undefined));
  await eventually("broken used by none", async () => ((await usedBy("broken")) === 0 ? true : undefined));
  const columns = await kubectl(["get", "harmonyendpoints", "-n", ns]);
  assert.match(columns, /^NAME\s+READY\s+REASON\s+SERVICE\s+PATH\s+PIPELINES\s+AGE$/m);
  assert.match(columns, /^shared\s+True\s+InUse\s+http\s+\/shared\s+2\s/m);
  assert.match(columns, /^broken\s+False\s+InvalidOptions\s+http\s+\/broken\s+0\s/m);

  // The gateway's own spec changes: new port in the config and the Deployment, status follows.
  const deployment = () =>
    getJson<{
      metadata: { generation: number };
      spec: { template: { spec: { containers: { ports: { containerPort: number }[] }[] } } };
    }>(["get", "deployment", "gw-harmony", "-n", ns]);
  const before = await eventually("the Deployment", deployment);
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify(cr("HarmonyGateway", "gw", { networks: [{ name: "web", port: 8181 }] })),
  );
  const cm = await eventually("config.toml with the new port", async () => {
    const c = await getJson<{ data: Record<string, string> }>(["get", "configmap", "gw-harmony-config", "-n", ns]);
    return /bind_port = 8181/.test(c.data["config.toml"] ?? "") ? c : undefined;
  });
  assert.doesNotMatch(cm.data["config.toml"]!, /bind_port = 8080/);
  const rolled = await eventually("the Deployment with the new port", async () => {
    const d = await deployment();
    return d.spec.template.spec.containers[0]!.ports.some((p) => p.containerPort === 8181) ? d : undefined;
  });
  assert.ok(rolled.metadata.generation > before.metadata.generation);
  const gw = await eventually("gateway observedGeneration 2", async () => {
    const r = await condition("harmonygateway", ns, "gw", "Programmed");
    return r.observed === 2 && r.c?.status === "True" ? r : undefined;
  });
  assert.equal(gw.generation, 2);
});
