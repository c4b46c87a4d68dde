/** The gateway's Deployment and Service: hot-reloadable mounts, hardened pod, our labels only. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { configReaderRbac, deploymentFor, serviceFor, childLabels, workloadPlan } from "../src/translator/workload.js";
import type { HarmonyGateway } from "../src/api/v1alpha1.js";
import TOML from "@iarna/toml";
import { render } from "../src/translator/render.js";

const gw: HarmonyGateway = {
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyGateway",
  metadata: { name: "edge", namespace: "clinic", uid: "u-1", labels: { "argocd.argoproj.io/instance": "clinic-app" } },
  spec: {
    replicas: 2,
    networks: [{ name: "web", port: 8080 }],
    management: { port: 9090 },
    resources: { limits: { memory: "256Mi" } },
  },
};

test("config and secrets are directory mounts (no subPath), so changes reach pods without a restart", () => {
  const d = deploymentFor(gw) as {
    spec: {
      replicas: number;
      template: {
        spec: {
          containers: {
            volumeMounts: Record<string, unknown>[];
            readinessProbe: unknown;
            securityContext: Record<string, unknown>;
            resources: unknown;
          }[];
          volumes: unknown[];
          securityContext: Record<string, unknown>;
        };
      };
    };
  };
  const pod = d.spec.template.spec;
  const c = pod.containers[0]!;
  assert.equal(d.spec.replicas, 2);
  for (const m of c.volumeMounts) assert.equal(m.subPath, undefined);
  assert.deepEqual(pod.volumes, [
    { name: "config", configMap: { name: "edge-harmony-config" } },
    { name: "secrets", secret: { secretName: "edge-harmony-secrets", defaultMode: 0o440 } },
    { name: "tmp", emptyDir: {} },
  ]);
  assert.deepEqual(c.readinessProbe, {
    httpGet: { path: "/readyz", port: 9090 },
    periodSeconds: 5,
    failureThreshold: 2,
  });
  assert.equal(pod.securityContext.runAsNonRoot, true);
  // Secret files are 0440, so the data plane reads them through the group the pod's fsGroup sets.
  assert.equal(pod.securityContext.fsGroup, pod.securityContext.runAsGroup);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(c.resources, { limits: { memory: "256Mi" } });
});

test("children carry an owner reference and our labels, never the CR's", () => {
  const s = serviceFor(gw) as {
    metadata: { labels: Record<string, string>; ownerReferences: { uid: string; controller: boolean }[] };
    spec: { ports: unknown[] };
  };
  assert.deepEqual(s.metadata.labels, childLabels(gw));
  assert.ok(!("argocd.argoproj.io/instance" in s.metadata.labels));
  assert.equal(s.metadata.ownerReferences[0]!.uid, "u-1");
  assert.equal(s.metadata.ownerReferences[0]!.controller, true);
  assert.deepEqual(s.spec.ports, [{ name: "web", port: 8080, targetPort: 8080, protocol: "TCP" }]);
});

test("DICOM listeners go on the Service, not the pod template (a new one needs no rollout)", () => {
  const s = serviceFor(gw, [11112, 104, 11112, 8080]) as { spec: { ports: { name: string; port: number }[] } };
  assert.deepEqual(
    s.spec.ports.map((p) => `${p.name}:${p.port}`),
    ["web:8080", "dicom-104:104", "dicom-11112:11112"],
  );
  const before = JSON.stringify(deploymentFor(gw));
  assert.equal(JSON.stringify(deploymentFor(gw)), before, "the Deployment does not depend on DICOM endpoints");
});

test("user labels never replace ours (the selector and the operator's pod lookups depend on them)", () => {
  const custom: HarmonyGateway = {
    ...gw,
    spec: {
      ...gw.spec,
      pod: { labels: { "harmony.runbeam.io/gateway": "other", team: "x" } },
      service: { labels: { "app.kubernetes.io/managed-by": "helm" } },
    },
  };
  const d = deploymentFor(custom) as { spec: { template: { metadata: { labels: Record<string, string> } } } };
  assert.equal(d.spec.template.metadata.labels["harmony.runbeam.io/gateway"], "edge");
  assert.equal(d.spec.template.metadata.labels.team, "x");
  const s = serviceFor(custom) as { metadata: { labels: Record<string, string> } };
  assert.equal(s.metadata.labels["app.kubernetes.io/managed-by"], "harmony-operator");
});

test("replicas unset is left out of the Deployment (an HPA owns it); no PDB asked for means remove one", () => {
  const { replicas: _r, ...rest } = gw.spec;
  const auto: HarmonyGateway = { ...gw, spec: rest };
  const plan = workloadPlan(auto, []);
  const kind = (objs: Record<string, unknown>[], k: string) => objs.find((o) => o.kind === k) as { spec: object };
  assert.ok(!("replicas" in kind(plan.apply, "Deployment").spec));
  // The pods' identity goes first, so a new pod finds its ServiceAccount and Role in place.
  assert.deepEqual(
    plan.apply.map((o) => o.kind),
    ["ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"],
  );
  assert.deepEqual(
    plan.remove.map((r) => `${r.kind}/${r.metadata.name}`),
    ["PodDisruptionBudget/edge-harmony"],
  );
  const withPdb = workloadPlan({ ...auto, spec: { ...rest, podDisruptionBudget: { maxUnavailable: "25%" } } }, []);
  assert.deepEqual(withPdb.remove, []);
  assert.deepEqual(
    (kind(withPdb.apply, "PodDisruptionBudget") as { spec: { maxUnavailable: string } }).spec.maxUnavailable,
    "25%",
  );
});

test("the pods run as the gateway's own ServiceAccount, whose Role reads only its ConfigMap and Secret", () => {
  const d = deploymentFor(gw) as {
    spec: {
      template: {
        spec: { serviceAccountName: string; automountServiceAccountToken: boolean; containers: { args: string[] }[] };
      };
    };
  };
  const pod = d.spec.template.spec;
  assert.equal(pod.serviceAccountName, "edge-harmony");
  assert.equal(pod.automountServiceAccountToken, true);
  assert.deepEqual(pod.containers[0]!.args, [
    "--config",
    "/etc/harmony/config/config.toml",
    "--config-source",
    `kubernetes://${gw.metadata.namespace}/edge-harmony-config?secret=edge-harmony-secrets&secretDir=/etc/harmony/secrets`,
  ]);
  const files = deploymentFor(gw, undefined, { watchApi: false }) as typeof d;
  assert.equal(files.spec.template.spec.automountServiceAccountToken, false);
  assert.ok(!files.spec.template.spec.containers[0]!.args.includes("--config-source"));

  const [sa, role, binding] = configReaderRbac(gw) as [
    { automountServiceAccountToken: boolean },
    { rules: { resources: string[]; resourceNames: string[]; verbs: string[] }[] },
    { roleRef: { kind: string; name: string }; subjects: { kind: string; name: string; namespace: string }[] },
  ];
  assert.equal(sa.automountServiceAccountToken, false);
  assert.deepEqual(
    role.rules.map((r) => [r.resources, r.resourceNames, r.verbs]),
    [
      [["configmaps"], ["edge-harmony-config"], ["get", "watch"]],
      [["secrets"], ["edge-harmony-secrets"], ["get"]],
    ],
  );
  assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "edge-harmony" });
  assert.deepEqual(binding.subjects, [
    { kind: "ServiceAccount", name: "edge-harmony", namespace: gw.metadata.namespace },
  ]);
});

test("rollouts lose no request: surge before removal, and the grace period outlasts the data plane's drain", () => {
  const d = deploymentFor(gw) as {
    spec: { strategy: unknown; template: { spec: { terminationGracePeriodSeconds?: number } } };
  };
  assert.deepEqual(d.spec.strategy, { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
  // What the pods run with is the rendered config: SIGKILL must come after its drain delay and its
  // shutdown timeout, or requests it means to finish are cut.
  const r = render(
    gw,
    [],
    () => undefined,
    () => undefined,
  );
  const proxy = (TOML.parse(r.files["config.toml"]!) as { proxy: Record<string, number> }).proxy;
  assert.ok(proxy.drain_delay_ms! > 0, "a drain delay is rendered");
  const grace = d.spec.template.spec.terminationGracePeriodSeconds;
  assert.ok(
    grace !== undefined && grace * 1000 > proxy.drain_delay_ms! + proxy.shutdown_timeout_ms!,
    `grace ${grace} s`,
  );
});
