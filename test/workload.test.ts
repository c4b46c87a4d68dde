/**
 * Deployment mode as a platform team customises it, against a real kube-apiserver: Service type
 * and annotations, pod metadata and scheduling, a PodDisruptionBudget that comes and goes with the
 * spec, and replicas left to an autoscaler when the gateway does not set them. No kubelet runs:
 * what is asserted is what the API server stored.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { ROOT, eventually as poll } from "../dataplane/test/helpers.js";

let cp: ControlPlane;
let operator: ChildProcess;
let operatorLog = "";

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${operatorLog.slice(-4000)}` });
const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, "-o", "json"])) as T;
const gateway = (ns: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyGateway",
  metadata: { name, namespace: ns },
  spec: { networks: [{ name: "web", port: 8080 }], ...spec },
});
/** Applied as the user does (kubectl's own field manager), replacing the whole spec. */
const applyGateway = (doc: unknown) => kubectl(["apply", "-f", "-"], JSON.stringify(doc));
const generation = async (ns: string, name: string) =>
  (await getJson<{ metadata: { generation: number } }>(["get", "harmonygateway", name, "-n", ns])).metadata.generation;
/** Waits until the operator reconciled generation `g` of the gateway (its status says so). */
const reconciled = (ns: string, name: string, g: number) =>
  eventually(`gateway ${ns}/${name} generation ${g} reconciled`, async () => {
    const o = await getJson<{ status?: { observedGeneration?: number } }>(["get", "harmonygateway", name, "-n", ns]);
    return o.status?.observedGeneration === g ? true : undefined;
  });

interface Deployment {
  metadata: { generation: number };
  spec: {
    replicas?: number;
    template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}
interface PodSpec {
  containers: { ports: { containerPort: number }[] }[];
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: { podAntiAffinity?: unknown };
  topologySpreadConstraints?: { topologyKey: string; maxSkew: number }[];
  priorityClassName?: string;
}
interface Service {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: { type: string; externalTrafficPolicy?: string; ports: { port: number; nodePort?: number }[] };
}

before(async () => {
  cp = await startControlPlane();
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
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
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

test("kubectl explain documents service, pod, podDisruptionBudget and sidecar", async () => {
  const explain = (path: string) => eventually(`kubectl explain ${path}`, () => kubectl(["explain", path]));
  assert.match(await explain("harmonygateways.spec.service"), /loadBalancerClass\s+<string>[\s\S]*type\s+<string>/);
  assert.match(
    await explain("harmonygateways.spec.pod"),
    /tolerations\s+<\[\]Object>[\s\S]*topologySpreadConstraints\s+<\[\]Object>/,
  );
  assert.match(await explain("harmonygateways.spec.podDisruptionBudget"), /minAvailable/);
  assert.match(await explain("harmonygateways.spec.sidecar.native"), /restartPolicy\s+Always/);
  // The CEL rule refuses both PDB bounds at once, as PodDisruptionBudget itself would.
  const both = await cp.kubectl(
    ["apply", "-f", "-"],
    JSON.stringify(gateway("default", "both", { podDisruptionBudget: { minAvailable: 1, maxUnavailable: 1 } })),
  );
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /set exactly one of minAvailable and maxUnavailable/);
});

test("service, pod and PDB settings reach the live objects; removing them cleans up", async () => {
  const ns = "custom";
  await kubectl(["create", "namespace", ns]);
  await applyGateway(
    gateway(ns, "edge", {
      replicas: 2,
      service: {
        type: "NodePort",
        annotations: { "example.com/lb": "internal" },
        labels: { team: "imaging", "app.kubernetes.io/managed-by": "someone-else" },
        externalTrafficPolicy: "Local",
      },
      pod: {
        annotations: { "prometheus.io/scrape": "true" },
        labels: { team: "imaging" },
        nodeSelector: { "kubernetes.io/os": "linux" },
        tolerations: [{ key: "dedicated", operator: "Equal", value: "harmony", effect: "NoSchedule" }],
        affinity: {
          podAntiAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              {
                weight: 100,
                podAffinityTerm: {
                  topologyKey: "kubernetes.io/hostname",
                  labelSelector: { matchLabels: { "harmony.runbeam.io/gateway": "edge" } },
                },
              },
            ],
          },
        },
        topologySpreadConstraints: [
          {
            maxSkew: 1,
            topologyKey: "topology.kubernetes.io/zone",
            whenUnsatisfiable: "ScheduleAnyway",
            labelSelector: { matchLabels: { "harmony.runbeam.io/gateway": "edge" } },
          },
        ],
        priorityClassName: "system-cluster-critical",
      },
      podDisruptionBudget: { minAvailable: 1 },
    }),
  );
  const svc = await eventually("a NodePort Service", async () => {
    const r = await cp.kubectl(["get", "service", "edge-harmony", "-n", ns, "-o", "json"]);
    const s = r.code === 0 ? (JSON.parse(r.stdout) as Service) : undefined;
    return s?.spec.type === "NodePort" ? s : undefined;
  });
  assert.equal(svc.metadata.annotations?.["example.com/lb"], "internal");
  assert.equal(svc.metadata.labels.team, "imaging");
  assert.equal(svc.metadata.labels["app.kubernetes.io/managed-by"], "harmony-operator", "our labels win");
  assert.equal(svc.spec.externalTrafficPolicy, "Local");
  assert.ok(svc.spec.ports[0]!.nodePort! > 0, "the API server allocated a node port");

  const d = await getJson<Deployment>(["get", "deployment", "edge-harmony", "-n", ns]);
  const tpl = d.spec.template;
  assert.equal(d.spec.replicas, 2);
  assert.equal(tpl.metadata.annotations?.["prometheus.io/scrape"], "true");
  assert.equal(tpl.metadata.labels.team, "imaging");
  assert.equal(tpl.metadata.labels["harmony.runbeam.io/gateway"], "edge");
  assert.deepEqual(tpl.spec.nodeSelector, { "kubernetes.io/os": "linux" });
  assert.deepEqual(tpl.spec.tolerations, [
    { key: "dedicated", operator: "Equal", value: "harmony", effect: "NoSchedule" },
  ]);
  assert.ok(tpl.spec.affinity?.podAntiAffinity);
  assert.deepEqual(
    tpl.spec.topologySpreadConstraints?.map((c) => [c.topologyKey, c.maxSkew]),
    [["topology.kubernetes.io/zone", 1]],
  );
  assert.equal(tpl.spec.priorityClassName, "system-cluster-critical");

  const pdb = await getJson<{
    spec: { minAvailable?: number; selector: { matchLabels: Record<string, string> } };
    metadata: { ownerReferences?: { kind: string; name: string }[] };
  }>(["get", "poddisruptionbudget", "edge-harmony", "-n", ns]);
  assert.equal(pdb.spec.minAvailable, 1);
  assert.equal(pdb.spec.selector.matchLabels["harmony.runbeam.io/gateway"], "edge");
  assert.deepEqual(
    pdb.metadata.ownerReferences?.map((o) => [o.kind, o.name]),
    [["HarmonyGateway", "edge"]],
  );

  // All of it removed from the spec: the PDB is deleted, the fields leave the live objects.
  await applyGateway(gateway(ns, "edge", { replicas: 2 }));
  await reconciled(ns, "edge", await generation(ns, "edge"));
  await eventually("the PDB deleted", async () => {
    const r = await cp.kubectl(["get", "poddisruptionbudget", "edge-harmony", "-n", ns, "-o", "name"]);
    return r.code !== 0 && /NotFound/.test(r.stderr) ? true : undefined;
  });
  const plainSvc = await getJson<Service>(["get", "service", "edge-harmony", "-n", ns]);
  assert.equal(plainSvc.spec.type, "ClusterIP");
  assert.equal(plainSvc.metadata.annotations?.["example.com/lb"], undefined);
  assert.equal(plainSvc.metadata.labels.team, undefined);
  const plain = await getJson<Deployment>(["get", "deployment", "edge-harmony", "-n", ns]);
  assert.equal(plain.spec.template.metadata.annotations?.["prometheus.io/scrape"], undefined);
  assert.equal(plain.spec.template.spec.nodeSelector, undefined);
  assert.equal(plain.spec.template.spec.tolerations, undefined);
  assert.equal(plain.spec.template.spec.priorityClassName, undefined);
});

test("a PDB the gateway did not create is not deleted", async () => {
  const ns = "foreign";
  await kubectl(["create", "namespace", ns]);
  await kubectl(
    ["create", "-f", "-"],
    JSON.stringify({
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name: "edge-harmony", namespace: ns },
      spec: { maxUnavailable: 1, selector: { matchLabels: { app: "x" } } },
    }),
  );
  await applyGateway(gateway(ns, "edge", {}));
  await reconciled(ns, "edge", await generation(ns, "edge"));
  await eventually("the Deployment", () => getJson<Deployment>(["get", "deployment", "edge-harmony", "-n", ns]));
  await kubectl(["get", "poddisruptionbudget", "edge-harmony", "-n", ns]);
});

test("replicas unset: a scale by another field manager (an HPA) survives the next reconcile", async () => {
  const ns = "autoscaled";
  await kubectl(["create", "namespace", ns]);
  await applyGateway(gateway(ns, "edge", {}));
  const created = await eventually("the Deployment", async () => {
    const r = await cp.kubectl(["get", "deployment", "edge-harmony", "-n", ns, "-o", "json"]);
    return r.code === 0 ? (JSON.parse(r.stdout) as Deployment) : undefined;
  });
  assert.equal(created.spec.replicas, 1, "the API server's default");
  // What an HPA does: write the scale subresource under its own field manager.
  await kubectl(["scale", "deployment", "edge-harmony", "-n", ns, "--replicas=3"]);
  // A spec change makes the operator apply the Deployment again (a new port rolls it).
  await applyGateway(gateway(ns, "edge", { networks: [{ name: "web", port: 8181 }] }));
  await reconciled(ns, "edge", await generation(ns, "edge"));
  const after = await eventually("the Deployment with the new port", async () => {
    const d = await getJson<Deployment>(["get", "deployment", "edge-harmony", "-n", ns]);
    return d.spec.template.spec.containers[0]!.ports.some((p) => p.containerPort === 8181) ? d : undefined;
  });
  assert.equal(after.spec.replicas, 3, "the operator must not take replicas back");

  // Setting replicas in the gateway makes them the operator's again.
  await applyGateway(gateway(ns, "edge", { replicas: 2, networks: [{ name: "web", port: 8181 }] }));
  await eventually("replicas 2 from the gateway", async () => {
    const d = await getJson<Deployment>(["get", "deployment", "edge-harmony", "-n", ns]);
    return d.spec.replicas === 2 ? true : undefined;
  });
});
