/**
 * What the sidecar injector adds to a pod, as an RFC 6902 JSON Patch. The container, its mounts and
 * volumes are taken from the gateway's Deployment (translator/workload.ts), so Deployment and
 * Sidecar mode run the same container spec; only names are prefixed, because a pod we did not
 * write may already use "config", "tmp" or "dataplane".
 */
import type { V1ConfigMap, V1Container, V1Pod, V1PodSpec, V1Volume } from "@kubernetes/client-node";
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { networksIn as configNetworks } from "../network/gateway-files.js";
import { deploymentFor } from "../translator/workload.js";

export const SIDECAR_NAME = "harmony-dataplane";
const VOLUME_PREFIX = "harmony-";

export type JsonPatchOp = { op: "add"; path: string; value: unknown };

export interface Injection {
  /** Empty when the pod already has the sidecar. */
  patch: JsonPatchOp[];
  /** For the user (AdmissionResponse.warnings): port clashes the API server would not catch. */
  warnings: string[];
}

/**
 * The data-plane container and the volumes it mounts, as the gateway's Deployment has them.
 * `networks`: the HarmonyNetworks the gateway's config names (networksIn), so
 * that the sidecar of a member gateway mounts its certificate, key, trust bundle and directory at
 * the paths its config names, as the Deployment's pods do.
 */
export function sidecarFor(
  gw: HarmonyGateway,
  defaultImage?: string,
  networks: readonly string[] = [],
): { container: V1Container; volumes: V1Volume[] } {
  // Files only: the sidecar runs as the application's ServiceAccount (see deploymentFor).
  const d = deploymentFor(gw, defaultImage, { watchApi: false, networks }) as unknown as {
    spec: { template: { spec: V1PodSpec } };
  };
  const podSpec = structuredClone(d.spec.template.spec);
  const container = podSpec.containers[0]!;
  const rename = (n: string) => VOLUME_PREFIX + n;
  container.name = SIDECAR_NAME;
  container.volumeMounts = (container.volumeMounts ?? []).map((m) => ({ ...m, name: rename(m.name) }));
  // The pod's securityContext belongs to the application; what the Deployment sets there for the
  // data plane moves onto the container (fsGroup has no container-level form and is not needed:
  // ConfigMap and Secret files are world-readable by default).
  const psc = podSpec.securityContext ?? {};
  container.securityContext = {
    ...(psc.runAsNonRoot !== undefined ? { runAsNonRoot: psc.runAsNonRoot } : {}),
    ...(psc.runAsUser !== undefined ? { runAsUser: psc.runAsUser } : {}),
    ...(psc.runAsGroup !== undefined ? { runAsGroup: psc.runAsGroup } : {}),
    ...(psc.seccompProfile ? { seccompProfile: psc.seccompProfile } : {}),
    ...container.securityContext,
  };
  // The application's pod has no fsGroup of ours, so the files stay root-owned: group-only modes
  // would lock the data plane out. 0444: readable by whichever container mounts the volume, and
  // only the sidecar does.
  const volumes = (podSpec.volumes ?? []).map((v) => ({
    ...v,
    name: rename(v.name),
    ...(v.secret ? { secret: { ...v.secret, defaultMode: 0o444 } } : {}),
  }));
  return { container, volumes };
}

export function hasSidecar(pod: V1Pod): boolean {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].some((c) => c.name === SIDECAR_NAME);
}

/**
 * Networks the gateway's rendered config (`<gateway>-harmony-config`, a sidecar's one ConfigMap)
 * names in `[harmony_networks.*]`. The operator writes the network Secret before any config that
 * names its files, so each of them is in that Secret; reading the config instead of the Secret
 * keeps key material (the gateway's network key) out of admission: the webhook needs no access
 * to Secrets but its own serving certificate's.
 */
export function networksIn(config: V1ConfigMap | undefined): string[] {
  return configNetworks(config?.data?.["config.toml"]).sort();
}

/** The patch that injects the sidecar into `pod`; idempotent (nothing for a pod that has it). */
export function injectionPatch(
  pod: V1Pod,
  gw: HarmonyGateway,
  defaultImage?: string,
  networks: readonly string[] = [],
): Injection {
  if (hasSidecar(pod)) return { patch: [], warnings: [] };
  const { container, volumes } = sidecarFor(gw, defaultImage, networks);
  const others = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  const warnings: string[] = [];
  const takenNames = new Set(others.flatMap((c) => (c.ports ?? []).map((p) => p.name).filter(Boolean)));
  const takenPorts = new Map(
    others.flatMap((c) => (c.ports ?? []).map((p) => [p.containerPort, c.name] as [number, string])),
  );
  container.ports = (container.ports ?? []).map((p) => {
    const owner = takenPorts.get(p.containerPort);
    if (owner) {
      warnings.push(
        `port ${p.containerPort} of the Harmony sidecar is also declared by container "${owner}"; one of them will fail to bind`,
      );
    }
    // Port names must be unique in a pod, and a clash would get the pod rejected; the name is
    // a convenience, the number is what matters.
    if (p.name && takenNames.has(p.name)) {
      const { name: _dropped, ...rest } = p;
      return rest;
    }
    return p;
  });

  const patch: JsonPatchOp[] = [];
  const existing = new Set((pod.spec?.volumes ?? []).map((v) => v.name));
  const add = volumes.filter((v) => !existing.has(v.name));
  if (!pod.spec?.volumes) patch.push({ op: "add", path: "/spec/volumes", value: add });
  else for (const v of add) patch.push({ op: "add", path: "/spec/volumes/-", value: v });
  if (gw.spec.sidecar?.native === false) {
    patch.push({ op: "add", path: "/spec/containers/-", value: container });
  } else {
    // Native sidecar: first among the init containers, so everything after it (their init
    // containers, then the app) starts only once the proxy passed its startup probe; and the
    // kubelet stops it when the app's containers end, so a Job's pod completes.
    const native: V1Container = { ...container, restartPolicy: "Always", startupProbe: startupProbe(container) };
    if (!pod.spec?.initContainers?.length) patch.push({ op: "add", path: "/spec/initContainers", value: [native] });
    else patch.push({ op: "add", path: "/spec/initContainers/0", value: native });
  }
  return { patch, warnings };
}

/**
 * Ready (config loaded, listeners bound) before the next container starts. Polled every second
 * for up to two minutes: a failing startup probe restarts the sidecar, so it must outlast a slow
 * first config load.
 */
function startupProbe(c: V1Container): V1Container["startupProbe"] {
  return { httpGet: { ...c.readinessProbe!.httpGet! }, periodSeconds: 1, failureThreshold: 120 };
}
