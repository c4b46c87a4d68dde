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
  event(
    obj: { kind: string; apiVersion: string; metadata: { name?: string; namespace?: string; uid?: string } },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void>;
}

export function kubeClients(kubeconfig?: string): KubeClients {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const objects = KubernetesObjectApi.makeApiClient(kc);
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
    async event(obj, type, reason, message) {
      const now = new Date().toISOString();
      await core.createNamespacedEvent({
        namespace: obj.metadata.namespace!,
        body: {
          metadata: { generateName: `${obj.metadata.name}.`, namespace: obj.metadata.namespace },
          involvedObject: {
            kind: obj.kind,
            apiVersion: obj.apiVersion,
            name: obj.metadata.name,
            namespace: obj.metadata.namespace,
            uid: obj.metadata.uid,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: "harmony-operator" },
          firstTimestamp: now as unknown as Date,
          lastTimestamp: now as unknown as Date,
          count: 1,
        },
      });
    },
  };
}

export type { KubernetesObject };
