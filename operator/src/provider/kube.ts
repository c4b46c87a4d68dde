/** The API clients the operator uses, from a kubeconfig (or the in-cluster service account). */
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { EventRecorder } from "./events.js";
import { KeepAliveKubeConfig } from "./keep-alive.js";

export interface KubeClients {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  objects: KubernetesObjectApi;
  patchStatus(
    group: string,
    version: string,
    namespace: string,
    plural: string,
    name: string,
    body: object,
  ): Promise<void>;
  /** Aggregated: a repeat bumps the count of the Event already written (see events.ts). */
  event(
    obj: { kind: string; apiVersion: string; metadata: { name?: string; namespace?: string; uid?: string } },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void>;
}

export function kubeClients(kubeconfig?: string): KubeClients {
  // Every client below, and every one made later from `kc` (API health, the leader Lease), shares
  // one keep-alive connection pool (keep-alive.ts).
  const kc = new KeepAliveKubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const events = new EventRecorder(core);
  return {
    kc,
    core,
    custom,
    objects,
    async patchStatus(group, version, namespace, plural, name, body) {
      await custom.patchNamespacedCustomObjectStatus(
        { group, version, namespace, plural, name, body, fieldManager: "harmony-operator-status" },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    },
    event: (obj, type, reason, message) => events.record(obj, type, reason, message),
  };
}

export type { KubernetesObject };
