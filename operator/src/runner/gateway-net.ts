/**
 * A gateway's network Secret (network/gateway-files.ts): written by the full gateway reconcile
 * before its config, and by the light path here when only network files changed.
 */
import type { V1Secret } from "@kubernetes/client-node";
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { gatewayNetworks, netSecretName, type GatewayNetworks } from "../network/gateway-files.js";
import { childLabels, ownerReference } from "../translator/workload.js";
import { CONFIGMAP_BUDGET, HASH_ANNOTATION, apply, type ReconcilerDeps } from "./gateway-reconciler.js";

/**
 * The light path (runner/network-reconciler.ts): only the network files changed, the config did
 * not, so only the network Secret is rewritten. Anything else (too large, gateway gone) is left
 * to the full reconcile.
 */
export async function reconcileGatewayNet(
  deps: ReconcilerDeps,
  namespace: string,
  name: string,
): Promise<{ requeueAfterMs?: number }> {
  const gw = deps.caches.gateways.get(name, namespace);
  if (!gw || gw.metadata.deletionTimestamp || !deps.networks) return {};
  const existing = await deps.readSecret(namespace, netSecretName(gw));
  // Never before the full reconcile has written the config that names these files.
  if (!existing) return {};
  const nets = gatewayNetworks(gw, deps.networks, existing);
  if (Object.values(nets.data).reduce((n, v) => n + v.length, 0) > CONFIGMAP_BUDGET) return {};
  await writeNetSecret(deps, gw, nets, existing);
  return {};
}

/** The gateway's network Secret, written when its files changed (and emptied when it left every network). */
export async function writeNetSecret(
  deps: ReconcilerDeps,
  gw: HarmonyGateway,
  nets: GatewayNetworks,
  existing: V1Secret | undefined,
): Promise<void> {
  if (!deps.networks || (!nets.names.length && !existing)) return;
  if (existing?.metadata?.annotations?.[HASH_ANNOTATION] === nets.hash) return;
  await apply(deps, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: netSecretName(gw),
      namespace: gw.metadata.namespace!,
      labels: childLabels(gw),
      annotations: { [HASH_ANNOTATION]: nets.hash },
      ownerReferences: [ownerReference(gw)],
    },
    type: "Opaque",
    data: Object.fromEntries(Object.entries(nets.data).map(([k, v]) => [k, v.toString("base64")])),
  });
}
