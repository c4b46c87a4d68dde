/**
 * Reconcile one HarmonyGateway, level-based: read everything from the informer caches, render,
 * write only what differs, report status. Running it twice in a row changes nothing the second
 * time. Errors throw (the queue retries with backoff); invalid user input never throws, it is
 * reported on the resource that caused it.
 */
import { createHash } from "node:crypto";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { GROUP, VERSION, type HarmonyEndpoint, type HarmonyGateway, type HarmonyPipeline } from "../api/v1alpha1.js";
import { render, type RenderResult } from "../translator/render.js";
import {
  GATEWAY_LABEL,
  childLabels,
  configMapName,
  configReaderRbac,
  ownerReference,
  secretName,
  workloadPlan,
  workloadSource,
  type WorkloadSource,
} from "../translator/workload.js";
import { gatewayNetworks, netSecretName, networksIn } from "../network/gateway-files.js";
import { writeNetSecret } from "./gateway-net.js";
import {
  CONFIGMAP_BUDGET,
  HASH_ANNOTATION,
  SPEC_ANNOTATION,
  apply,
  type ReconcilerDeps,
  type WriteDeps,
} from "./reconciler-deps.js";

export {
  CONFIGMAP_BUDGET,
  HASH_ANNOTATION,
  SPEC_ANNOTATION,
  apply,
  type Caches,
  type ReconcilerDeps,
  type WriteDeps,
} from "./reconciler-deps.js";
import { attachment } from "./attachment.js";
import { readReferences } from "./references.js";
import { networkReachableCondition, networkRefsCondition, wantedReplicas } from "./gateway-status.js";
import {
  canonical,
  eventTransitions,
  setConditions,
  sameConditions,
  transitions,
  type DesiredCondition,
} from "./conditions.js";
import { STATUS_WRITERS, inParallel, verdictsHold } from "./status-writes.js";
import { forget, renderCacheFor, renderFingerprint, renders } from "./render-memo.js";
import { hashesServing, recordParts } from "./served-parts.js";
import { SHARD_MANIFEST } from "@harmony/dataplane";
import type { ShardLayout } from "../translator/shards.js";
import { layoutFor, largestObject, orphanShards, removeOrphanShards, writeShards } from "./shard-writes.js";

/** Pipelines that attach to this gateway: same namespace or allowed, and matching its selector. */
export function attachedPipelines(gw: HarmonyGateway, all: readonly HarmonyPipeline[]): HarmonyPipeline[] {
  return all.filter((p) => attachment(gw, p).attached);
}

export async function reconcileGateway(
  deps: ReconcilerDeps,
  namespace: string,
  name: string,
): Promise<{ requeueAfterMs?: number }> {
  const { caches, logger } = deps;
  const gw = caches.gateways.get(name, namespace);
  if (!gw || gw.metadata.deletionTimestamp) {
    forget(`${namespace}/${name}`);
    return {}; // children go with it (ownerReferences)
  }

  const pipelines = attachedPipelines(gw, caches.pipelines.list());
  const refs = await readReferences(gw, pipelines, { secret: deps.readSecret, configMap: deps.readConfigMap });
  const existingNet = deps.networks ? await deps.readSecret(namespace, netSecretName(gw)) : undefined;
  const nets = gatewayNetworks(gw, deps.networks, existingNet);
  // The same inputs render the same bytes: most reconciles at scale (our own ConfigMap write
  // coming back, pods, requeues) change nothing the render reads, and skip it.
  const fp = refs.any ? undefined : renderFingerprint(gw, pipelines, caches.endpoints, nets);
  const memo = renders.get(`${namespace}/${name}`);
  const r: RenderResult =
    fp !== undefined && memo?.fp === fp
      ? memo.r
      : render(
          gw,
          pipelines,
          (ns, n) => caches.endpoints.get(n, ns),
          refs.secrets,
          refs.configMaps,
          nets,
          renderCacheFor(`${namespace}/${name}`),
        );
  if (fp !== undefined) renders.set(`${namespace}/${name}`, { fp, r });
  else renders.delete(`${namespace}/${name}`);

  const conditions: DesiredCondition[] = [];
  let programmedHash: string | undefined;
  const existing = caches.configMaps.get(configMapName(gw), namespace);
  const renderedPipelines = r.pipelines.filter((p) => p.programmed).length;

  // Certificates only the cluster can vouch for: the networks they leave out, or all found.
  conditions.push(networkRefsCondition(r.unavailableNetworks));
  const reachable = networkReachableCondition(gw, deps.networks);
  if (reachable) conditions.push(reachable);
  if (r.gatewayProblems.length) {
    conditions.push({
      type: "Accepted",
      status: "False",
      reason: "InvalidGateway",
      message: r.gatewayProblems.join("; "),
    });
    conditions.push({
      type: "Programmed",
      status: "False",
      reason: "InvalidGateway",
      // On a first render there is no previous config to keep.
      message: existing
        ? "nothing written; the previous config keeps serving"
        : "nothing written; no config has been written for this gateway yet",
    });
  } else {
    conditions.push({
      type: "Accepted",
      status: "True",
      reason: "Accepted",
      message: `${pipelines.length} pipeline(s) attached`,
    });
    // Deployment mode spreads a large config over shard ConfigMaps (translator/shards.ts); a
    // sidecar's volume is fixed when the webhook injects it, so it keeps one ConfigMap.
    const sharding = (gw.spec.mode ?? "Deployment") === "Deployment";
    const layout: ShardLayout = sharding ? layoutFor(gw, r, existing) : { main: r.files, shards: [] };
    const size = largestObject(layout);
    const secretSize = Object.values(r.secrets).reduce((n, v) => n + v.length, 0);
    // The previous config keeps the networks it names: not once the gateway has left one of them
    // (its org removed from the network, whose pipelines then all fail for want of it), or a
    // revoked membership would go on serving with the identity it had.
    const keepOld =
      renderedPipelines === 0 &&
      pipelines.length > 0 &&
      existing !== undefined &&
      networksIn(existing.data?.["config.toml"]).every((n) => nets.names.includes(n));
    // The network Secret too: a directory too large for it must not fail every reconcile at the apply.
    const netSize = Object.values(nets.data).reduce((n, v) => n + v.length, 0);
    if (size > CONFIGMAP_BUDGET || secretSize > CONFIGMAP_BUDGET) {
      conditions.push({
        type: "Programmed",
        status: "False",
        reason: "ConfigMapTooLarge",
        message: `rendered config${layout.shards.length ? `'s largest shard` : ""} is ${size} bytes (secrets ${secretSize}); the limit is ${CONFIGMAP_BUDGET}. Split pipelines across gateways.`,
      });
    } else if (netSize > CONFIGMAP_BUDGET) {
      conditions.push({
        type: "Programmed",
        status: "False",
        reason: "NetworkFilesTooLarge",
        message: `network files (directories, exports) are ${netSize} bytes; the Secret limit is ${CONFIGMAP_BUDGET}. Export fewer endpoints or split the network.`,
      });
    } else if (keepOld) {
      conditions.push({
        type: "Programmed",
        status: "False",
        reason: "NoValidPipelines",
        message: "every attached pipeline is invalid; the previous config keeps serving",
      });
    } else {
      // Network files first: a config naming them must not reach pods before they exist. (Computed
      // again from the registry as it is now, under a per-gateway lock: gateway-net.ts.)
      await writeNetSecret(deps, gw);
      const manage = deps.manageWorkloads && (gw.spec.mode ?? "Deployment") === "Deployment";
      const shardNames = layout.shards.map((s) => s.name);
      // Shards of a set the gateway is leaving: still readable until deleted (pods not yet replaced).
      const orphans = orphanShards(gw, caches.configMaps.list(namespace), shardNames);
      await writeConfig(deps, gw, r, existing, {
        layout,
        lookup: (n) => caches.configMaps.get(n, namespace),
        // The pods' Role names a new shard before the manifest that sends their watch to it.
        beforeMain: manage
          ? async () => {
              for (const o of configReaderRbac(gw, [...shardNames, ...orphans])) await applyIfChanged(deps, o);
            }
          : undefined,
      });
      programmedHash = r.hash;
      recordParts(`${namespace}/${name}`, r.hash, r.parts);
      conditions.push({
        type: "Programmed",
        status: "True",
        reason: "Programmed",
        message: `config ${r.hash.slice(0, 12)} with ${renderedPipelines} pipeline(s)`,
      });
      if (manage) {
        const programmed = new Set(r.pipelines.filter((o) => o.programmed).map((o) => `${o.namespace}/${o.name}`));
        const dimsePorts = pipelines
          .filter((p) => programmed.has(`${p.metadata.namespace}/${p.metadata.name}`))
          .flatMap((p) => p.spec.endpoints.map((e) => caches.endpoints.get(e.name, p.metadata.namespace)))
          .flatMap((e) => (e?.spec.service === "dicom" && e.spec.port ? [e.spec.port] : []));
        await applyWorkloads(deps, gw, dimsePorts, nets.names, shardNames, [...shardNames, ...orphans]);
      }
      if (orphans.length) {
        const pods = caches.pods.list(namespace).filter((p) => p.metadata?.labels?.[GATEWAY_LABEL] === name);
        const kept = await removeOrphanShards(deps.kube, gw, orphans, pods, () => deps.metrics?.writes("ConfigMap"));
        // The pods' Role stops naming what is gone now, not after this reconcile's status writes.
        if (manage && kept.length < orphans.length)
          for (const o of configReaderRbac(gw, [...shardNames, ...kept])) await applyIfChanged(deps, o);
      }
    }
  }

  // Ready: how many data-plane pods serve the hash we wrote (or, when we kept the old one, any).
  const want = programmedHash ?? existing?.metadata?.annotations?.[HASH_ANNOTATION];
  const { hashes, total } = await servingPods(deps, gw);
  const serving = want ? hashes.filter((h) => h === want).length : 0;
  const desiredReplicas =
    (gw.spec.mode ?? "Deployment") === "Deployment" ? await wantedReplicas(deps, gw) : Math.max(total, 1);
  const ready = want !== undefined && serving >= desiredReplicas && desiredReplicas > 0;
  conditions.push({
    type: "Ready",
    status: ready ? "True" : "False",
    reason: ready ? "Serving" : r.gatewayProblems.length ? "InvalidGateway" : "WaitingForDataPlane",
    // Ready is about the pods; a network left out for its certificate is named so `kubectl get` shows it.
    message:
      `${serving}/${desiredReplicas} pods serving config ${want?.slice(0, 12) ?? "(none)"}` +
      (r.unavailableNetworks.size
        ? `; not served: ${[...r.unavailableNetworks.keys()].map((n) => `network "${n}"`).join(", ")} (see ResolvedRefs)`
        : ""),
  });

  await writeStatus(deps, gw, "harmonygateways", conditions, {
    configHash: want,
    configMapName: configMapName(gw),
    pipelines: renderedPipelines,
    servingReplicas: serving,
  });

  // Each attached pipeline's own status. Its messages name the gateway, never the config hash
  // (that is on the gateway's status): with the hash in them, every config change rewrote every
  // attached pipeline's status, ~1,000 writes per CR edit at 1,000 pipelines, all without news.
  // Writes go a few at a time (1,000 one after another took longer than the change itself). A
  // write that only refreshes messages (pod counts) is dropped once a newer change of this gateway
  // waits, whose reconcile writes them again; one that changes a condition's status or reason is
  // always made, so a stream of edits cannot hold a pipeline's verdict back.
  const gatewayName = `HarmonyGateway ${namespace}/${name}`;
  const byKey = new Map(pipelines.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
  const statusWrites: (() => Promise<void>)[] = [];
  const refreshes: (() => Promise<void>)[] = [];
  for (const o of r.pipelines) {
    const p = byKey.get(`${o.namespace}/${o.name}`);
    if (!p) continue;
    const pc: DesiredCondition[] = [];
    if (o.failure?.condition === "ResolvedRefs") {
      pc.push({
        type: "Accepted",
        status: "True",
        reason: "Accepted",
        message: `attached to HarmonyGateway ${namespace}/${name}`,
      });
      pc.push({ type: "ResolvedRefs", status: "False", reason: o.failure.reason, message: o.failure.message });
    } else if (o.failure) {
      pc.push({ type: "Accepted", status: "False", reason: o.failure.reason, message: o.failure.message });
      pc.push({ type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "all references found" });
    } else {
      const warnings = o.warnings?.length ? `; warnings: ${o.warnings.join("; ")}` : "";
      pc.push({
        type: "Accepted",
        status: "True",
        reason: "Accepted",
        message: `attached to HarmonyGateway ${namespace}/${name}${warnings}`,
      });
      pc.push({ type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "all references found" });
    }
    const inConfig = o.programmed && programmedHash !== undefined;
    pc.push(
      inConfig
        ? { type: "Programmed", status: "True", reason: "Programmed", message: `in the config of ${gatewayName}` }
        : {
            type: "Programmed",
            status: "False",
            reason: o.failure?.reason ?? "GatewayNotProgrammed",
            message: o.failure ? "left out of the gateway's config" : "the gateway's config was not written",
          },
    );
    // Pod counts only mean something for a pipeline that is in the config those pods serve. A pod
    // serves this pipeline when its config holds the pipeline as it is now, whichever hash that
    // config has: an edit of another pipeline is no reason to call this one not Ready.
    const mine = hashesServing(`${namespace}/${name}`, `${o.namespace}/${o.name}`);
    const podsFor = hashes.filter((h) => h !== undefined && mine.includes(h)).length;
    const servedHere = podsFor >= desiredReplicas && desiredReplicas > 0;
    const podsServing = `${podsFor}/${desiredReplicas} pods serving the config of ${gatewayName}`;
    pc.push(
      inConfig && servedHere
        ? { type: "Ready", status: "True", reason: "Serving", message: podsServing }
        : inConfig
          ? { type: "Ready", status: "False", reason: "WaitingForDataPlane", message: podsServing }
          : {
              type: "Ready",
              status: "False",
              reason: o.failure?.reason ?? "GatewayNotProgrammed",
              message: o.failure
                ? "not served: left out of the gateway's config"
                : "not served: the gateway's config was not written",
            },
    );
    (verdictsHold(p.status?.conditions, pc, p.metadata.generation) ? refreshes : statusWrites).push(() =>
      writeStatus(deps, p, "harmonypipelines", pc, {}),
    );
  }
  await inParallel(statusWrites, STATUS_WRITERS);
  await inParallel(refreshes, STATUS_WRITERS, deps.superseded);
  logger.debug("Reconciled gateway", {
    gateway: `${namespace}/${name}`,
    hash: r.hash,
    pipelines: renderedPipelines,
    serving,
  });
  // While pods exist that do not serve the config yet, look again soon: a hot reload shows in the
  // probe, not in any event. With no pods at all, the pod informer wakes us when one appears.
  if (total > 0 && serving < total) return { requeueAfterMs: 1000 };
  // Secret values change without an event we see; the kubelet takes about as long to update a
  // mounted Secret, so rechecking at this pace adds little to a rotation.
  const recheck = refs.any ? (deps.secretRecheckMs ?? 60_000) : Infinity;
  // A workload certificate is renewed when two thirds of its life have passed.
  const renew = nets.renewAt !== undefined ? Math.max(1000, nets.renewAt - Date.now()) : Infinity;
  const after = Math.min(recheck, renew);
  return Number.isFinite(after) ? { requeueAfterMs: after } : {};
}

/** Used by HarmonyGateways and Gateway API Gateways alike (one workload model, translator/workload.ts). */
export async function writeConfig(
  deps: WriteDeps,
  gw: HarmonyGateway | WorkloadSource,
  r: Pick<RenderResult, "files" | "secrets" | "hash">,
  existing: V1ConfigMap | undefined,
  sharded?: {
    layout: ShardLayout;
    lookup: (name: string) => V1ConfigMap | undefined;
    /** Runs after the shards, before the main ConfigMap (when that changes). */
    beforeMain?: () => Promise<void>;
  },
): Promise<void> {
  const ns = workloadSource(gw).namespace;
  const secretsHash = createHash("sha256");
  for (const k of Object.keys(r.secrets).sort()) secretsHash.update(k).update("\0").update(r.secrets[k]!);
  const sHash = secretsHash.digest("hex");
  const existingSecret = await deps.readSecret(ns, secretName(gw));
  if (existingSecret?.metadata?.annotations?.[HASH_ANNOTATION] !== sHash) {
    await apply(deps, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: secretName(gw),
        namespace: ns,
        labels: childLabels(gw),
        annotations: { [HASH_ANNOTATION]: sHash },
        ownerReferences: [ownerReference(gw)],
      },
      type: "Opaque",
      data: Object.fromEntries(Object.entries(r.secrets).map(([k, v]) => [k, v.toString("base64")])),
    });
  }
  const layout = sharded?.layout ?? { main: r.files, shards: [] };
  // Shards first, the main ConfigMap (whose manifest names them) last: a reader that sees the new
  // manifest finds every shard it names already there (README: Large gateways).
  if (layout.shards.length) await writeShards({ apply: (o) => apply(deps, o) }, gw, layout, sharded!.lookup);
  // No change, no write, no reload. The manifest changes with any shard's content.
  if (
    existing?.metadata?.annotations?.[HASH_ANNOTATION] === r.hash &&
    existing.data?.[SHARD_MANIFEST] === layout.main[SHARD_MANIFEST]
  )
    return;
  await sharded?.beforeMain?.();
  await apply(deps, {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: configMapName(gw),
      namespace: ns,
      labels: childLabels(gw),
      annotations: { [HASH_ANNOTATION]: r.hash },
      ownerReferences: [ownerReference(gw)],
    },
    data: layout.main,
  });
}

export async function applyWorkloads(
  deps: WriteDeps,
  gw: HarmonyGateway | WorkloadSource,
  dimsePorts: number[],
  networks: string[],
  shards: readonly string[] = [],
  readableShards: readonly string[] = shards,
): Promise<void> {
  const plan = workloadPlan(gw, dimsePorts, deps.defaultImage, networks, shards, readableShards);
  for (const obj of plan.apply) await applyIfChanged(deps, obj);
  for (const ref of plan.remove) {
    const current = await deps.kube.objects.read(ref).catch((e: unknown) => {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    });
    // Only what this gateway made: a same-named object someone else owns is not ours to delete.
    const uid = workloadSource(gw).owner.uid;
    if (!current?.metadata?.ownerReferences?.some((o) => o.uid === uid && o.controller)) continue;
    await deps.kube.objects.delete(ref).catch((e: unknown) => {
      if ((e as { code?: number }).code !== 404) throw e;
    });
    deps.metrics?.writes(ref.kind);
  }
}

/** Applies `obj` unless the live object carries the hash of this very spec. */
async function applyIfChanged(deps: WriteDeps, obj: Record<string, unknown>): Promise<void> {
  const specHash = createHash("sha256").update(JSON.stringify(obj)).digest("hex").slice(0, 16);
  const meta = obj.metadata as { name: string; namespace: string; annotations?: Record<string, string> };
  const current = await deps.kube.objects
    .read({
      apiVersion: obj.apiVersion as string,
      kind: obj.kind as string,
      metadata: { name: meta.name, namespace: meta.namespace },
    })
    .catch((e: unknown) => {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    });
  if (current?.metadata?.annotations?.[SPEC_ANNOTATION] === specHash) return;
  meta.annotations = { ...(meta.annotations ?? {}), [SPEC_ANNOTATION]: specHash };
  await apply(deps, obj);
}

/** The config hash each Ready data-plane pod of the gateway serves (undefined: no answer), and how many pods there are. */
async function servingPods(
  deps: ReconcilerDeps,
  gw: HarmonyGateway,
): Promise<{ hashes: (string | undefined)[]; total: number }> {
  const port = gw.spec.management?.port ?? 9090;
  const pods = deps.caches.pods
    .list(gw.metadata.namespace)
    .filter(
      (p) =>
        p.metadata?.labels?.[GATEWAY_LABEL] === gw.metadata.name && p.status?.podIP && !p.metadata?.deletionTimestamp,
    );
  // Serving means the kubelet has marked the pod Ready too: until then the Service sends it no
  // traffic, and a client that waited for the gateway's Ready would be refused.
  const ready = pods.filter((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
  const hashes = await Promise.all(ready.map((p) => deps.probe(p.status!.podIP!, port).catch(() => undefined)));
  return { hashes, total: pods.length };
}

/** Merge-patches status when it changed; conditions keep their transition times. Emits Events on flips. */
export async function writeStatus(
  deps: ReconcilerDeps,
  obj: HarmonyGateway | HarmonyPipeline | HarmonyEndpoint,
  plural: string,
  desired: DesiredCondition[],
  extra: Record<string, unknown>,
): Promise<void> {
  const generation = obj.metadata.generation;
  const conditions = setConditions(obj.status?.conditions, desired, generation);
  const status = { observedGeneration: generation, conditions, ...extra };
  const current = {
    observedGeneration: obj.status?.observedGeneration,
    conditions: obj.status?.conditions,
    ...pick(obj.status, Object.keys(extra)),
  };
  if (
    current.observedGeneration === generation &&
    sameConditions(current.conditions, conditions) &&
    canonical(pick(obj.status, Object.keys(extra))) === canonical(pick(status, Object.keys(extra)))
  ) {
    return;
  }
  // Before the write: its watch event may come back before the answer does.
  if (plural === "harmonyendpoints") deps.endpointStatuses?.wrote(obj, status);
  await deps.kube.patchStatus(GROUP, VERSION, obj.metadata.namespace!, plural, obj.metadata.name!, { status });
  deps.metrics?.writes(`${obj.kind}/status`);
  const flips = obj.kind === "HarmonyGateway" ? transitions : eventTransitions;
  for (const c of flips(obj.status?.conditions, conditions)) {
    await deps.kube
      .event(obj, c.status === "True" ? "Normal" : "Warning", c.reason, `${c.type}=${c.status}: ${c.message}`)
      .catch((e: unknown) => deps.logger.warn("Event not recorded", { error: String(e) }));
  }
}

function pick(o: unknown, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!o || typeof o !== "object") return out;
  for (const k of keys) if ((o as Record<string, unknown>)[k] !== undefined) out[k] = (o as Record<string, unknown>)[k];
  return out;
}
