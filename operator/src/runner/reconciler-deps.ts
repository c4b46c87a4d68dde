/**
 * What every reconciler of a gateway's world shares: the informer caches, the clients and callbacks
 * they run with, the annotations and budget they agree on, and the one way they write (server-side
 * apply). At the bottom of runner/, so that the gateway reconciler and its helpers (gateway-net,
 * gateway-status, render-memo) all import it rather than each other.
 */
import {
  PatchStrategy,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Pod,
  type V1Secret,
} from "@kubernetes/client-node";
import type { Logger } from "winston";
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline } from "../api/v1alpha1.js";
import type { HarmonyNetwork } from "../api/network.js";
import type { NetworkRegistry } from "../network/state.js";
import type { Cache } from "../provider/cache.js";
import type { KubeClients } from "../provider/kube.js";
import type { OwnWrites } from "./own-writes.js";
import type { OwnStatuses } from "./own-statuses.js";

export const HASH_ANNOTATION = "harmony.runbeam.io/config-hash";
export const SPEC_ANNOTATION = "harmony.runbeam.io/spec-hash";
const FIELD_MANAGER = "harmony-operator";
/** ConfigMap data limit (1 MiB) less room for metadata. */
export const CONFIGMAP_BUDGET = 1_048_576 - 16_384;

export interface Caches {
  gateways: Cache<HarmonyGateway & KubernetesObject>;
  pipelines: Cache<HarmonyPipeline & KubernetesObject>;
  endpoints: Cache<HarmonyEndpoint & KubernetesObject>;
  configMaps: Cache<V1ConfigMap>;
  pods: Cache<V1Pod>;
  networks: Cache<HarmonyNetwork & KubernetesObject>;
  namespaces: Cache<KubernetesObject>;
}

export interface ReconcilerDeps {
  kube: KubeClients;
  caches: Caches;
  logger: Logger;
  /** Run Deployment/Service (off in tests without a kubelet where only config is wanted). */
  manageWorkloads: boolean;
  defaultImage?: string;
  /**
   * One Secret, read when a render needs it (undefined when it does not exist). Secrets are not
   * cached: the operator holds only those its gateways use, only while it renders, and needs no
   * list or watch on Secrets at all.
   */
  readSecret: (namespace: string, name: string) => Promise<V1Secret | undefined>;
  /** One ConfigMap a fileOptions entry names, read the same way (undefined when it does not exist). */
  readConfigMap: (namespace: string, name: string) => Promise<V1ConfigMap | undefined>;
  /** How soon a gateway that uses Secrets is rendered again, to pick up changed values (no watch sees them). */
  secretRecheckMs?: number;
  /** Asks a data-plane pod which config it serves (GET /readyz). */
  probe: (podIP: string, port: number) => Promise<string | undefined>;
  metrics?: { writes: (kind: string) => void };
  /** ConfigMaps as this operator last wrote them: the informer drops their echo (own-writes.ts). */
  ownWrites?: OwnWrites;
  /** Endpoint statuses as this operator last wrote them: the informer drops their echo (own-statuses.ts). */
  endpointStatuses?: OwnStatuses;
  /** HarmonyNetworks as last reconciled (absent: networks are off). */
  networks?: NetworkRegistry;
  /**
   * How long a new endpoint no pipeline uses yet waits before it is written Unused
   * (endpoint-reconciler.ts; NEW_ENDPOINT_GRACE_MS without).
   */
  newEndpointGraceMs?: number;
  /** True once a newer event for the object being reconciled is waiting in the queue. */
  superseded?: () => boolean;
}

/** What writing a gateway's config and workload needs. */
export type WriteDeps = Pick<ReconcilerDeps, "kube" | "metrics" | "readSecret" | "defaultImage" | "ownWrites">;

/** Server-side apply, forced: the operator owns these fields. */
export async function apply(
  deps: Pick<ReconcilerDeps, "kube" | "metrics" | "ownWrites">,
  obj: KubernetesObject & Record<string, unknown>,
): Promise<void> {
  // Before the write: its watch event may come back before the answer does.
  if (obj.kind === "ConfigMap") deps.ownWrites?.wrote(obj);
  await deps.kube.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  deps.metrics?.writes(obj.kind ?? "unknown");
}
