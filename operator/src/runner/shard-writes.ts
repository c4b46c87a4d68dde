/**
 * Writing a sharded config (translator/shards.ts says what goes where): only the shards whose
 * content changed, before the main ConfigMap whose manifest names them; and, once no pod mounts
 * them any more, deleting the shards of a set the gateway has left.
 */
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { shardDigestKey } from "@harmony/dataplane";
import { planShards, shardCount, type ShardLayout } from "../translator/shards.js";
import {
  childLabels,
  configMapName,
  ownerReference,
  workloadSource,
  type WorkloadSource,
} from "../translator/workload.js";
import type { RenderResult } from "../translator/render.js";
import type { KubeClients } from "../provider/kube.js";
import { inParallel } from "./status-writes.js";

/** Shard writes in flight at once. */
const SHARD_WRITERS = 4;

/** The layout of the last render of each gateway: the same render lays out the same way. */
const layouts = new WeakMap<Pick<RenderResult, "files">, { current: number; layout: ShardLayout }>();

/** Where `r`'s files go, given the main ConfigMap as it is (its manifest says how many shards there are). */
export function layoutFor(
  gw: HarmonyGateway | WorkloadSource,
  r: Pick<RenderResult, "files">,
  existing: V1ConfigMap | undefined,
): ShardLayout {
  const current = shardCount(existing?.data);
  const memo = layouts.get(r);
  if (memo && memo.current === current) return memo.layout;
  const layout = planShards(configMapName(gw), r.files, current);
  layouts.set(r, { current, layout });
  return layout;
}

/** Largest object of a layout, in bytes of data: what must fit under the ConfigMap limit. */
export function largestObject(layout: ShardLayout): number {
  const size = (d: Record<string, string>) => Object.entries(d).reduce((n, [k, v]) => n + k.length + v.length, 0);
  return Math.max(size(layout.main), ...layout.shards.map((s) => size(s.data)));
}

export async function writeShards(
  deps: { apply: (obj: Record<string, unknown> & { kind: string }) => Promise<void> },
  gw: HarmonyGateway | WorkloadSource,
  layout: ShardLayout,
  lookup: (name: string) => V1ConfigMap | undefined,
): Promise<void> {
  const ns = workloadSource(gw).namespace;
  // A shard's own digest key, not an annotation: a hand edit that kept the annotation is still undone.
  const changed = layout.shards.filter((s) => lookup(s.name)?.data?.[shardDigestKey(s.name)] !== s.digest);
  await inParallel(
    changed.map(
      (s) => () =>
        deps.apply({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: {
            name: s.name,
            namespace: ns,
            labels: childLabels(gw),
            ownerReferences: [ownerReference(gw)],
          },
          data: s.data,
        }),
    ),
    SHARD_WRITERS,
  );
}

/** Shard ConfigMaps of this gateway (by name and owner) that `keep` does not name. */
export function orphanShards(
  gw: HarmonyGateway | WorkloadSource,
  configMaps: readonly V1ConfigMap[],
  keep: readonly string[],
): string[] {
  const main = configMapName(gw);
  const uid = workloadSource(gw).owner.uid;
  const shard = new RegExp(`^${main.replace(/[.]/g, "\\.")}-\\d+-\\d+$`);
  return configMaps
    .filter((c) => shard.test(c.metadata?.name ?? "") && !keep.includes(c.metadata!.name!))
    .filter((c) => c.metadata?.ownerReferences?.some((o) => o.uid === uid && o.controller))
    .map((c) => c.metadata!.name!);
}

/**
 * Deletes the orphans no pod still mounts (returns those kept): a pod of the previous set keeps its files (and serves)
 * until the rollout replaces it, and the kubelet keeps a deleted ConfigMap's last files anyway, but
 * a pod restarting in place would not start without them.
 */
export async function removeOrphanShards(
  kube: Pick<KubeClients, "core">,
  gw: HarmonyGateway | WorkloadSource,
  orphans: readonly string[],
  pods: readonly V1Pod[],
  onDelete?: () => void,
): Promise<string[]> {
  const mounted = new Set(
    pods.flatMap((p) =>
      (p.spec?.volumes ?? []).flatMap((v) => [
        ...(v.configMap?.name ? [v.configMap.name] : []),
        ...(v.projected?.sources ?? []).flatMap((s) => (s.configMap?.name ? [s.configMap.name] : [])),
      ]),
    ),
  );
  const namespace = workloadSource(gw).namespace;
  const kept: string[] = [];
  for (const name of orphans) {
    if (mounted.has(name)) {
      kept.push(name);
      continue;
    }
    await kube.core.deleteNamespacedConfigMap({ name, namespace }).catch((e: unknown) => {
      if ((e as { code?: number }).code !== 404) throw e;
    });
    onDelete?.();
  }
  return kept;
}
