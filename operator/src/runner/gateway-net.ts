/**
 * A gateway's network Secret (network/gateway-files.ts): written by the full gateway reconcile
 * before its config, and by the light path here when only network files changed.
 */
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { gatewayNetworks, netSecretName } from "../network/gateway-files.js";
import { childLabels, ownerReference } from "../translator/workload.js";
import { CONFIGMAP_BUDGET, HASH_ANNOTATION, apply, type ReconcilerDeps } from "./reconciler-deps.js";

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
  await writeNetSecret(deps, gw, { onlyIfPresent: true });
  return {};
}

/**
 * One write of a gateway's network Secret at a time: the full reconcile and the light path run on
 * different queues, and each computes the files from the registry as it is when it writes (inside
 * the lock), never as it was when its reconcile began. Otherwise a full reconcile that read the
 * registry before a peer's CA was imported could overwrite the light path's newer Secret, and
 * nothing would write it again.
 */
const writing = new Map<string, Promise<unknown>>();

function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const run = (writing.get(key) ?? Promise.resolve()).then(fn, fn);
  const tail = run.catch(() => undefined);
  writing.set(key, tail);
  void tail.then(() => {
    if (writing.get(key) === tail) writing.delete(key);
  });
  return run;
}

/**
 * The gateway's network Secret, written when its files changed (and emptied when it left every
 * network). `onlyIfPresent` (the light path): never before the full reconcile has written the
 * config that names these files, and never a Secret too large (the full reconcile reports that).
 */
export function writeNetSecret(
  deps: ReconcilerDeps,
  gw: HarmonyGateway,
  opts: { onlyIfPresent?: boolean } = {},
): Promise<void> {
  return serialized(`${gw.metadata.namespace}/${gw.metadata.name}`, async () => {
    if (!deps.networks) return;
    const existing = await deps.readSecret(gw.metadata.namespace!, netSecretName(gw));
    if (opts.onlyIfPresent && !existing) return;
    const nets = gatewayNetworks(gw, deps.networks, existing);
    if (!nets.names.length && !existing) return;
    if (Object.values(nets.data).reduce((n, v) => n + v.length, 0) > CONFIGMAP_BUDGET) return;
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
  });
}
