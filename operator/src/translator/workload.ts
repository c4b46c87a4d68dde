/**
 * The Deployment and Service that run a gateway's data plane (Deployment mode). Config reaches
 * the pods through directory mounts (no subPath, which never updates), so a config change is a
 * hot reload; only what lives in the pod spec (image, replicas, resources, ports) rolls pods.
 *
 * The mounts are the source at start and the fallback; the pods also watch their ConfigMap
 * through the API (`--config-source`), which serves a change in about a second instead of the
 * kubelet's 48–78 s. For that each gateway gets its own ServiceAccount, bound to a Role that
 * reads exactly its ConfigMap (and shards) and Secret and nothing else.
 */
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { CONFIG_DIR, DRAIN_DELAY_MS, SECRET_DIR, SHUTDOWN_TIMEOUT_MS } from "./render.js";
import { NET_DIR, NET_FILES, netSecretKey } from "../network/directory.js";

export const DEFAULT_IMAGE = "ghcr.io/runbeam/harmony-dataplane:0.1.0";
export const MANAGED_BY = "harmony-operator";
export const GATEWAY_LABEL = "harmony.runbeam.io/gateway";
/** Secret files: 0440, read through the pod's fsGroup (Kubernetes' default is 0644). */
export const SECRET_MODE = 0o440;

/**
 * SIGTERM → SIGKILL: the data plane's drain delay and shutdown timeout (both rendered into its
 * config), plus room for the process to exit. Kubernetes' default (30 s) would cut requests that
 * the data plane still means to finish.
 */
export const TERMINATION_GRACE_SECONDS = Math.ceil((DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS) / 1000) + 5;

/**
 * The one model every data-plane workload is made from: a HarmonyGateway, or a Gateway API Gateway
 * (gatewayapi/workload.ts), described neutrally. `base` names the children and is their selector
 * label's value (a DNS label: a Gateway's name may be 253 characters, a label value only 63).
 */
export interface WorkloadSource {
  owner: { apiVersion: string; kind: string; name: string; uid: string };
  namespace: string;
  base: string;
  /** The label (value: base) that selects this gateway's pods; distinct per owner kind. */
  selectorKey: string;
  /** Listener ports: the Service's `port`, the container's `targetPort`. */
  ports: { name: string; port: number; targetPort: number }[];
  spec: Pick<
    HarmonyGateway["spec"],
    "management" | "pod" | "replicas" | "image" | "resources" | "service" | "podDisruptionBudget"
  >;
}

/** A HarmonyGateway as a WorkloadSource (its children keep the names they always had). */
export function workloadSource(gw: HarmonyGateway | WorkloadSource): WorkloadSource {
  if ("base" in gw) return gw;
  return {
    owner: { apiVersion: gw.apiVersion, kind: gw.kind, name: gw.metadata.name ?? "", uid: gw.metadata.uid ?? "" },
    namespace: gw.metadata.namespace ?? "",
    base: gw.metadata.name ?? "",
    selectorKey: GATEWAY_LABEL,
    ports: gw.spec.networks.map((n) => ({ name: n.name, port: n.port, targetPort: n.port })),
    spec: gw.spec,
  };
}

type Source = HarmonyGateway | WorkloadSource;

export const configMapName = (gw: Source) => `${workloadSource(gw).base}-harmony-config`;
export const secretName = (gw: Source) => `${workloadSource(gw).base}-harmony-secrets`;
export const workloadName = (gw: Source) => `${workloadSource(gw).base}-harmony`;

/** The data plane's `--config-source`: its own ConfigMap, and the Secret mounted at SECRET_DIR. */
export const configSourceUri = (gw: Source) =>
  `kubernetes://${workloadSource(gw).namespace}/${configMapName(gw)}?secret=${secretName(gw)}&secretDir=${SECRET_DIR}`;

/** Our labels only: never the CR's own (Argo CD would prune children that carry its tracking label). */
export function childLabels(gw: Source): Record<string, string> {
  const w = workloadSource(gw);
  return {
    "app.kubernetes.io/name": "harmony-dataplane",
    "app.kubernetes.io/instance": w.base,
    "app.kubernetes.io/managed-by": MANAGED_BY,
    [w.selectorKey]: w.base,
  };
}

export function ownerReference(gw: Source) {
  return { ...workloadSource(gw).owner, controller: true, blockOwnerDeletion: true };
}

const metadata = (gw: Source, name: string) => ({
  name,
  namespace: workloadSource(gw).namespace,
  labels: childLabels(gw),
  ownerReferences: [ownerReference(gw)],
});

/**
 * `watchApi: false` for the sidecar: it runs as the application pod's ServiceAccount, which must
 * not be able to read the gateway's Secret, so it stays on the mounted files (README: Sidecar mode).
 *
 * `networks`: the HarmonyNetworks the gateway is a member of; their files (network/gateway-files.ts)
 * are mounted at NET_DIR/<network>/. Optional items: export.jws exists only for exporting networks.
 */
export function deploymentFor(
  source: Source,
  defaultImage = DEFAULT_IMAGE,
  {
    watchApi = true,
    networks = [],
    shards = [],
  }: {
    watchApi?: boolean;
    networks?: readonly string[];
    /** The shard ConfigMaps of a large gateway's config (translator/shards.ts), beside the main one. */
    shards?: readonly string[];
  } = {},
): Record<string, unknown> {
  const gw = workloadSource(source);
  const spec = gw.spec;
  const pod = spec.pod ?? {};
  const mgmtPort = spec.management?.port ?? 9090;
  const selector = podSelector(gw);
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: metadata(gw, workloadName(gw)),
    spec: {
      // Unset: left out of the apply, so the field is not ours and an HPA's (or kubectl scale's)
      // value survives every reconcile; the API server defaults it to 1 on create.
      ...(spec.replicas !== undefined ? { replicas: spec.replicas } : {}),
      selector: { matchLabels: selector },
      // A new pod is Ready before an old one goes: capacity never drops during a rollout.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          // Ours last: the selector and the operator's pod lookups depend on them.
          labels: { ...(pod.labels ?? {}), ...childLabels(gw) },
          ...(pod.annotations && Object.keys(pod.annotations).length ? { annotations: pod.annotations } : {}),
        },
        spec: {
          ...scheduling(pod),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            fsGroup: 65532,
            seccompProfile: { type: "RuntimeDefault" },
          },
          // The gateway's own ServiceAccount, whose token reads only this gateway's ConfigMap and
          // Secret; mounted here only (the ServiceAccount itself does not automount).
          ...(watchApi ? { serviceAccountName: workloadName(gw) } : {}),
          automountServiceAccountToken: watchApi,
          terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
          containers: [
            {
              name: "dataplane",
              image: spec.image || defaultImage,
              args: [
                "--config",
                `${CONFIG_DIR}/config.toml`,
                ...(watchApi ? ["--config-source", configSourceUri(gw)] : []),
              ],
              ports: [
                ...gw.ports.map((n) => ({ name: n.name.slice(0, 15), containerPort: n.targetPort, protocol: "TCP" })),
                { name: "management", containerPort: mgmtPort, protocol: "TCP" },
              ],
              readinessProbe: { httpGet: { path: "/readyz", port: mgmtPort }, periodSeconds: 5, failureThreshold: 2 },
              livenessProbe: { httpGet: { path: "/healthz", port: mgmtPort }, periodSeconds: 10, failureThreshold: 3 },
              ...(spec.resources ? { resources: spec.resources } : {}),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: [
                { name: "config", mountPath: CONFIG_DIR, readOnly: true },
                { name: "secrets", mountPath: SECRET_DIR, readOnly: true },
                { name: "tmp", mountPath: "/tmp" },
                ...(networks.length ? [{ name: "harmony-net", mountPath: NET_DIR, readOnly: true }] : []),
              ],
            },
          ],
          volumes: [
            // Sharded: one projected volume, so the kubelet swaps all of it at once (one ..data);
            // the list changes only with the set of shards, never with their content.
            shards.length
              ? {
                  name: "config",
                  projected: {
                    sources: [configMapName(gw), ...shards].map((name) => ({ configMap: { name } })),
                  },
                }
              : { name: "config", configMap: { name: configMapName(gw) } },
            // Owner-and-group readable only: the pod's fsGroup (65532, the data plane's group) owns the files.
            { name: "secrets", secret: { secretName: secretName(gw), defaultMode: SECRET_MODE } },
            { name: "tmp", emptyDir: {} },
            ...(networks.length
              ? [
                  {
                    name: "harmony-net",
                    secret: {
                      secretName: `${gw.base}-harmony-net`,
                      defaultMode: SECRET_MODE,
                      optional: true,
                      items: networks.flatMap((n) =>
                        NET_FILES.map((f) => ({ key: netSecretKey(n, f), path: `${n}/${f}` })),
                      ),
                    },
                  },
                ]
              : []),
          ],
        },
      },
    },
  };
}

/**
 * `dimsePorts`: the DICOM listeners of the gateway's endpoints. They go on the Service only: a pod
 * needs no containerPort to accept a connection, so a new DICOM endpoint reaches clients without
 * rolling the Deployment (the data plane opens the port on hot reload).
 */
export function serviceFor(source: Source, dimsePorts: number[] = []): Record<string, unknown> {
  const gw = workloadSource(source);
  const http = gw.ports.map((n) => ({ name: n.name, port: n.port, targetPort: n.targetPort, protocol: "TCP" }));
  const taken = new Set(http.map((p) => p.port));
  const dimse = [...new Set(dimsePorts)]
    .filter((p) => !taken.has(p))
    .sort((a, b) => a - b)
    .map((p) => ({ name: `dicom-${p}`, port: p, targetPort: p, protocol: "TCP", appProtocol: "dicom" }));
  const svc = gw.spec.service ?? {};
  const meta = metadata(gw, workloadName(gw));
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      ...meta,
      labels: { ...(svc.labels ?? {}), ...meta.labels },
      ...(svc.annotations && Object.keys(svc.annotations).length ? { annotations: svc.annotations } : {}),
    },
    spec: {
      type: svc.type ?? "ClusterIP",
      ...(svc.loadBalancerClass ? { loadBalancerClass: svc.loadBalancerClass } : {}),
      ...(svc.externalTrafficPolicy ? { externalTrafficPolicy: svc.externalTrafficPolicy } : {}),
      selector: podSelector(gw),
      ports: [...http, ...dimse],
    },
  };
}

/** The gateway's PodDisruptionBudget, or undefined when it asks for none (then an existing one goes). */
export function pdbFor(source: Source): Record<string, unknown> | undefined {
  const gw = workloadSource(source);
  const b = gw.spec.podDisruptionBudget;
  if (!b || (b.minAvailable === undefined && b.maxUnavailable === undefined)) return undefined;
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: metadata(gw, workloadName(gw)),
    spec: {
      selector: { matchLabels: podSelector(gw) },
      ...(b.minAvailable !== undefined ? { minAvailable: b.minAvailable } : { maxUnavailable: b.maxUnavailable }),
    },
  };
}

/**
 * The pods' identity for the watch: a ServiceAccount, a Role with `get`/`watch` on exactly the
 * gateway's ConfigMap and `get` on exactly its Secret (resourceNames; a watch names its object
 * with a metadata.name field selector, which RBAC matches against resourceNames), and the binding.
 * No `list`: the data plane GETs, then watches from that resourceVersion. The operator holds every
 * verb granted here (RBAC refuses to let it grant more than it has).
 */
export function configReaderRbac(source: Source, shards: readonly string[] = []): Record<string, unknown>[] {
  const gw = workloadSource(source);
  const name = workloadName(gw);
  return [
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(gw, name),
      automountServiceAccountToken: false,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: metadata(gw, name),
      rules: [
        {
          apiGroups: [""],
          resources: ["configmaps"],
          resourceNames: [configMapName(gw), ...shards],
          verbs: ["get", "watch"],
        },
        { apiGroups: [""], resources: ["secrets"], resourceNames: [secretName(gw)], verbs: ["get"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: metadata(gw, name),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: gw.namespace }],
    },
  ];
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
}

/**
 * Deployment mode's objects: what to apply, and what the spec no longer asks for and must go
 * (only objects the operator made: the caller checks the ownerReference before deleting).
 */
export function workloadPlan(
  gw: Source,
  dimsePorts: number[],
  defaultImage?: string,
  networks: readonly string[] = [],
  shards: readonly string[] = [],
  /** Shards the pods may read: those mounted, and any of a previous set not yet deleted. */
  readable: readonly string[] = shards,
): { apply: Record<string, unknown>[]; remove: ObjectRef[] } {
  // The identity first: a pod started by the Deployment finds its ServiceAccount and Role in place.
  const apply = [
    ...configReaderRbac(gw, readable),
    deploymentFor(gw, defaultImage, { networks, shards }),
    serviceFor(gw, dimsePorts),
  ];
  const pdb = pdbFor(gw);
  const ref = { name: workloadName(gw), namespace: workloadSource(gw).namespace };
  if (pdb) apply.push(pdb);
  return { apply, remove: pdb ? [] : [{ apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: ref }] };
}

const podSelector = (gw: WorkloadSource) => ({
  "app.kubernetes.io/name": "harmony-dataplane",
  [gw.selectorKey]: gw.base,
});

/** Pod-spec scheduling fields, only those set (an empty list would still be a field we own). */
function scheduling(pod: NonNullable<HarmonyGateway["spec"]["pod"]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (pod.nodeSelector && Object.keys(pod.nodeSelector).length) out.nodeSelector = pod.nodeSelector;
  if (pod.tolerations?.length) out.tolerations = pod.tolerations;
  if (pod.affinity && Object.keys(pod.affinity).length) out.affinity = pod.affinity;
  if (pod.topologySpreadConstraints?.length) out.topologySpreadConstraints = pod.topologySpreadConstraints;
  if (pod.priorityClassName) out.priorityClassName = pod.priorityClassName;
  return out;
}
