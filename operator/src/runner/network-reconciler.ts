/**
 * Reconcile one HarmonyNetwork: members, CA (and its rotation), local entries, peer imports, the
 * signed export, and status. Member gateways render from the result (network/state.ts); they are
 * requeued whenever anything they render changed, so every path to a gateway's directory goes
 * through here.
 */
import { createHash } from "node:crypto";
import { PatchStrategy, setHeaderOptions, type V1Secret } from "@kubernetes/client-node";
import type { Logger } from "winston";
import { GROUP, VERSION } from "../api/v1alpha1.js";
import type { HarmonyNetwork, PeerStatus } from "../api/network.js";
import type { KubeClients } from "../provider/kube.js";
import { ensureCa } from "../network/ca-store.js";
import { removeCertificates, syncCertificates } from "../network/cert-manager.js";
import {
  exportedEntries,
  exportedOrgs,
  localEntries,
  memberGateways,
  memberOrgs,
  type NamespaceInfo,
  type PeerImport,
  type SkippedMember,
} from "../network/directory.js";
import { fetchExport, signExport, verifyExport } from "../network/federation.js";
import { describeConflict } from "../network/trust-bundle.js";
import { finish, type NetworkRegistry, type NetworkRuntime } from "../network/state.js";
import { setConditions, sameConditions, canonical, type DesiredCondition } from "./conditions.js";
import type { Caches } from "./gateway-reconciler.js";

export interface NetworkDeps {
  kube: KubeClients;
  caches: Caches;
  logger: Logger;
  registry: NetworkRegistry;
  /** Where CA Secrets, peering tokens and stored imports live. */
  namespace: string;
  /**
   * Namespaces and their labels, for spec.members.namespaceSelector: every namespace (from the
   * cache) for a cluster-wide operator; the watched ones, read one by one, for a scoped one.
   */
  namespaces: () => Promise<readonly NamespaceInfo[]>;
  /** --watch-namespaces; undefined: all. Member orgs outside it are skipped and reported. */
  watched?: readonly string[];
  /**
   * Names this operator in `status.operator`, the claim that keeps two operators (scoped ones with
   * disjoint namespaces, or a scoped one beside a cluster-wide one) from both serving a network:
   * each would make its own CA and overwrite the other's status on every write.
   */
  operatorId: string;
  /** How often a scoped operator re-reads namespace labels (it cannot watch namespaces). */
  namespaceRecheckMs?: number;
  readSecret: (namespace: string, name: string) => Promise<V1Secret | undefined>;
  enqueue: (key: string) => void;
  /** Names this cluster in exports. */
  clusterName: string;
}

export const importConfigMapName = (network: string, peer: string) => `harmony-network-${network}-peer-${peer}`;

export async function reconcileNetwork(deps: NetworkDeps, name: string): Promise<{ requeueAfterMs?: number }> {
  const { caches, registry } = deps;
  const net = caches.networks.get(name) as HarmonyNetwork | undefined;
  const before = registry.get(name);
  if (!net || net.metadata.deletionTimestamp) {
    registry.delete(name);
    // Certificates are owned by their gateways, which stay: the network's go with it.
    await removeCertificates(deps.kube, name);
    for (const g of before?.gateways ?? []) deps.enqueue(`gateway/${g}`);
    for (const org of before?.orgs ?? []) enqueueEndpoints(deps, org);
    return {};
  }
  const now = Date.now();
  const certManager = net.spec.ca?.mode === "CertManager";
  const ref = net.spec.ca?.certManager?.issuerRef;
  if (certManager && (!ref?.name || !ref.kind)) {
    // Only where the CRD's CEL rule and the webhook did not run (an older CRD).
    await writeNetworkStatus(deps, net, [
      {
        type: "Ready",
        status: "False",
        reason: "InvalidCA",
        message: "spec.ca.mode CertManager needs spec.ca.certManager.issuerRef {name, kind: Issuer|ClusterIssuer}",
      },
    ]);
    return {};
  }
  const claimant = net.status?.operator;
  const otherOperator = claimant !== undefined && claimant !== deps.operatorId;
  const { orgs, skipped: skippedOrgs } = otherOperator
    ? { orgs: [], skipped: [] }
    : memberOrgs(net, await deps.namespaces(), deps.watched);
  if (otherOperator || (deps.watched && !orgs.length)) {
    // Not ours: another operator serves it, or (scoped) none of its members is a namespace we
    // watch. Nothing is written for a network we do not serve; one we served is let go.
    if (otherOperator && before)
      deps.logger.warn("Network served by another operator; leaving it", { network: name, operator: claimant });
    registry.delete(name);
    registry.markForeign(name);
    for (const g of before?.gateways ?? []) deps.enqueue(`gateway/${g}`);
    for (const org of before?.orgs ?? []) enqueueEndpoints(deps, org);
    if (claimant === deps.operatorId) await releaseNetwork(deps, net);
    return {};
  }
  if (!certManager && before?.leaves) await removeCertificates(deps.kube, name);
  // In CertManager mode the operator's own CA only signs the federation export (its key never
  // issues a leaf): peers pin its fingerprint as before.
  const opCa = await ensureCa(deps.kube, deps.namespace, net, deps.readSecret, now);
  const gateways = memberGateways(net, orgs, caches.gateways.list());
  const certs = certManager ? await syncCertificates(deps, net, gateways, new Date(now)) : undefined;
  const ca = certs ? { ...opCa, bundlePem: certs.bundlePem } : opCa;
  const { entries: local, skipped: skippedGateways } = localEntries(net, gateways, caches.pipelines.list(), (ns, n) =>
    caches.endpoints.get(n, ns),
  );
  const skipped: SkippedMember[] = [...skippedOrgs, ...skippedGateways];

  const imports = new Map(before?.imports ?? []);
  const peers = new Map(before?.peers ?? []);
  const loaded = new Set(before?.loaded ?? []);
  const interval = (net.spec.syncIntervalSeconds ?? 30) * 1000;
  const wanted = new Set((net.spec.peers ?? []).map((p) => p.name));
  for (const k of [...imports.keys()]) if (!wanted.has(k)) imports.delete(k);
  for (const k of [...peers.keys()]) if (!wanted.has(k)) peers.delete(k);
  let nextPeerAt = Infinity;
  for (const peer of net.spec.peers ?? []) {
    const st: PeerStatus = peers.get(peer.name) ?? { name: peer.name, state: "Pending" };
    const last = st.lastAttemptTime ? Date.parse(st.lastAttemptTime) : 0;
    const token = await deps.readSecret(deps.namespace, peer.tokenSecretRef.name);
    const url = token?.data?.url && Buffer.from(token.data.url, "base64").toString("utf8").trim();
    const pin = token?.data?.fingerprint && Buffer.from(token.data.fingerprint, "base64").toString("utf8").trim();
    if (!loaded.has(peer.name) && pin) {
      loaded.add(peer.name);
      const stored = await loadImport(deps, name, peer.name, pin);
      if (stored) imports.set(peer.name, stored);
    }
    const slot = `${name}/${peer.name}`;
    const done = registry.takeResult(slot);
    // A validly signed, unexpired export older than the one held is a replay (of a captured
    // export, or by a relay between us and the peer): taking it would roll back the peer's
    // entries, orgs and CAs, so it is refused and the newer import stays.
    const held = imports.get(peer.name)?.serial;
    const replayed =
      done && "imp" in done && held !== undefined && done.imp.serial !== undefined && done.imp.serial < held
        ? `export signed at ${new Date(done.imp.serial).toISOString()} is older than the one imported ` +
          `(${new Date(held).toISOString()}): a replayed export is refused`
        : undefined;
    if (done && "imp" in done && !replayed) {
      if (!imports.has(peer.name) || !sameImport(imports.get(peer.name)!, done.imp))
        await storeImport(deps, name, peer.name, done.jws);
      // A peer keeps its place in the claim order (trust-bundle.ts orgClaims) across re-exports.
      imports.set(peer.name, { ...done.imp, firstImportedAt: imports.get(peer.name)?.firstImportedAt ?? now });
      Object.assign(st, { state: "Synced", lastSyncTime: done.at, entries: done.imp.entries.length });
      delete st.lastError;
    } else if (done) {
      // The last good import stays: a peer going away leaves local traffic and its old entries alone.
      Object.assign(st, {
        state: "Error",
        lastError: replayed ?? ("error" in done ? done.error : ""),
        entries: imports.get(peer.name)?.entries.length ?? 0,
      });
      deps.logger.warn("Peer sync failed", { network: name, peer: peer.name, error: st.lastError });
    }
    if ((now - last >= interval || !st.lastAttemptTime) && !registry.isFetching(slot)) {
      st.lastAttemptTime = new Date(now).toISOString();
      registry.startFetch(
        slot,
        async () => {
          if (!url || !pin)
            throw new Error(
              `peering token Secret ${deps.namespace}/${peer.tokenSecretRef.name} needs keys url and fingerprint`,
            );
          const jws = await fetchExport(url);
          return { jws, imp: await verifyExport(jws, pin, peer.name) };
        },
        () => deps.enqueue(`network//${name}`),
      );
    }
    peers.set(peer.name, st);
    if (!registry.isFetching(slot)) nextPeerAt = Math.min(nextPeerAt, Date.parse(st.lastAttemptTime!) + interval);
  }

  // The export: re-signed when its content changes or half its lifetime has passed.
  let { exportJws, exportKey, exportRenewAt } = before ?? {};
  const exported = exportedEntries(net, local);
  if (net.spec.export?.endpoints?.length) {
    const validity = net.spec.export.validitySeconds ?? 86400;
    const payload = {
      network: name,
      domain: net.spec.domain,
      issuer_cluster: deps.clusterName,
      entries: exported,
      orgs: exportedOrgs(net, orgs),
      // The signing CA is in it either way: a peer checks that it is (federation.ts).
      trust_bundle_pem: certs ? ca.bundlePem + opCa.current.caPem.trim() + "\n" : ca.bundlePem,
    };
    const key = createHash("sha256").update(canonical(payload)).update(ca.current.caPem).digest("hex");
    if (key !== exportKey || now >= (exportRenewAt ?? 0)) {
      exportJws = await signExport(ca.current, payload, validity, now);
      exportKey = key;
      exportRenewAt = now + (validity * 1000) / 2;
    }
  } else {
    [exportJws, exportKey, exportRenewAt] = [undefined, undefined, undefined];
  }

  const rt: NetworkRuntime = finish({
    net,
    orgs,
    gateways: gateways.map((g) => `${g.metadata.namespace}/${g.metadata.name}`),
    ca,
    ...(certs ? { leaves: certs.leaves } : {}),
    local,
    imports,
    peers,
    loaded,
    exportJws,
    exportKey,
    exportRenewAt,
    skipped,
  });
  registry.set(name, rt);
  // Membership or listener changed: member gateways render their config again. Only the files
  // (directory, bundle, export): the light path rewrites their network Secret without a render,
  // which at 1,000 endpoints is the difference between milliseconds and a full config check.
  if (rt.configDigest !== before?.configDigest) {
    for (const g of new Set([...(before?.gateways ?? []), ...rt.gateways])) deps.enqueue(`gateway/${g}`);
  } else if (rt.digest !== before.digest) {
    for (const g of rt.gateways) deps.enqueue(`gatewaynet/${g}`);
  }
  if (canonical(before?.orgs ?? []) !== canonical(orgs) || before?.net.spec.domain !== net.spec.domain) {
    for (const org of new Set([...(before?.orgs ?? []), ...orgs])) enqueueEndpoints(deps, org);
  }

  // A peer's claim on an org held by this cluster or an earlier peer: on the peer, and in Ready.
  for (const st of peers.values()) {
    const refused = rt.conflicts.filter((c) => c.peer === st.name);
    if (refused.length) {
      st.refusedOrgs = refused.map((c) => c.org);
      st.message = refused.map(describeConflict).join("; ");
    } else {
      delete st.refusedOrgs;
      delete st.message;
    }
  }
  const peerList = [...peers.values()].sort((a, b) => a.name.localeCompare(b.name));
  const synced = peerList.filter((p) => p.state === "Synced").length;
  const failing = peerList.filter((p) => p.state === "Error");
  await writeNetworkStatus(
    deps,
    net,
    [
      certs?.notReady.length
        ? {
            type: "Ready",
            status: "False",
            reason: "CertificateNotReady",
            message:
              `${certs.notReady.length} of ${gateways.length} gateway certificate(s) not ready: ` +
              certs.notReady
                .slice(0, 5)
                .map((n) => `Certificate ${n.certificate}: ${n.message}`)
                .join("; ")
                .slice(0, 2000),
          }
        : {
            type: "Ready",
            status: "True",
            // Serving what it can: a skipped member is named (status.skipped has each one's reason).
            reason: skipped.length
              ? "MembersSkipped"
              : failing.length
                ? "PeersDegraded"
                : rt.conflicts.length
                  ? "PeerOrgConflict"
                  : "Ready",
            message:
              `${orgs.length} org(s), ${gateways.length} gateway(s), ${local.length} endpoint(s)` +
              (peerList.length ? `; peers ${synced}/${peerList.length} synced` : "") +
              (failing.length ? ` (failing: ${failing.map((p) => p.name).join(", ")})` : "") +
              (rt.conflicts.length ? `; ${rt.conflicts.map(describeConflict).join("; ")}` : "") +
              (skipped.length ? `; skipped: ${skipped.map((m) => `${m.name} (${m.reason})`).join(", ")}` : ""),
          },
    ],
    {
      operator: deps.operatorId,
      skipped: skipped.length ? skipped : null,
      members: orgs,
      memberCount: orgs.length,
      gateways: gateways.length,
      endpoints: local.length,
      peers: peerList,
      peerSummary: `${synced}/${peerList.length}`,
      caFingerprint: ca.fingerprint,
    },
  );
  // A scoped operator cannot watch namespaces: a selector's label changes are read again at this pace.
  const relabelAt =
    deps.watched && net.spec.members.namespaceSelector ? now + (deps.namespaceRecheckMs ?? 300_000) : Infinity;
  // cert-manager's Certificates and Secrets are polled (cert-manager.ts says why not watched).
  const certsAt = certs ? now + interval : Infinity;
  const due = Math.min(nextPeerAt, ca.nextStepAt ?? Infinity, exportRenewAt ?? Infinity, relabelAt, certsAt);
  return Number.isFinite(due) ? { requeueAfterMs: Math.max(100, due - Date.now()) } : {};
}

function enqueueEndpoints(deps: NetworkDeps, org: string): void {
  for (const e of deps.caches.endpoints.list(org)) deps.enqueue(`endpoint/${org}/${e.metadata.name}`);
}

// A re-signed export with the same content is the same import (only exp and serial differ).
const sameImport = (a: PeerImport, b: PeerImport) =>
  canonical({ ...a, exp: undefined, serial: undefined, firstImportedAt: undefined }) ===
  canonical({ ...b, exp: undefined, serial: undefined, firstImportedAt: undefined });

/** The last verified export of a peer, kept so a restart (or a peer that went away) still has it. */
async function storeImport(deps: NetworkDeps, network: string, peer: string, jws: string): Promise<void> {
  await deps.kube.objects.patch(
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: importConfigMapName(network, peer),
        namespace: deps.namespace,
        labels: { "app.kubernetes.io/managed-by": "harmony-operator", "harmony.runbeam.io/network": network },
      },
      // Public, signed data: the signature is checked again when it is read back.
      data: { "export.jws": jws },
    },
    undefined,
    undefined,
    "harmony-operator",
    true,
    PatchStrategy.ServerSideApply,
  );
}

async function loadImport(
  deps: NetworkDeps,
  network: string,
  peer: string,
  pin: string,
): Promise<PeerImport | undefined> {
  // From the cache of the operator's own ConfigMaps (it carries the managed-by label), or, when the
  // operator does not watch its own namespace (--watch-namespaces without it), read once.
  const cm =
    deps.caches.configMaps.get(importConfigMapName(network, peer), deps.namespace) ??
    (deps.watched && !deps.watched.includes(deps.namespace)
      ? await deps.kube.core
          .readNamespacedConfigMap({ namespace: deps.namespace, name: importConfigMapName(network, peer) })
          .catch((e: unknown) => {
            if ((e as { code?: number }).code === 404) return undefined;
            throw e;
          })
      : undefined);
  const jws = cm?.data?.["export.jws"];
  if (!jws) return undefined;
  // The ConfigMap was created by the first import: its age keeps the peer's place in the claim order.
  const created = new Date(cm?.metadata?.creationTimestamp as unknown as string | Date).getTime();
  return verifyExport(jws, pin, peer, { ignoreExpiry: true })
    .then((imp): PeerImport => ({ ...imp, ...(Number.isFinite(created) ? { firstImportedAt: created } : {}) }))
    .catch((e: unknown) => {
      deps.logger.warn("Stored peer import no longer verifies; ignored", { network, peer, error: String(e) });
      return undefined;
    });
}

/** Gives up the claim on a network this operator no longer serves (status.operator: null). */
async function releaseNetwork(deps: NetworkDeps, net: HarmonyNetwork): Promise<void> {
  await deps.kube.custom.patchClusterCustomObjectStatus(
    {
      group: GROUP,
      version: VERSION,
      plural: "harmonynetworks",
      name: net.metadata.name!,
      body: { status: { operator: null } },
      fieldManager: "harmony-operator-status",
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

async function writeNetworkStatus(
  deps: NetworkDeps,
  net: HarmonyNetwork,
  desired: DesiredCondition[],
  extra: Record<string, unknown> = {},
): Promise<void> {
  const generation = net.metadata.generation;
  const conditions = setConditions(net.status?.conditions, desired, generation);
  const cur = net.status ?? {};
  const keys = Object.keys(extra);
  // null (a merge patch's "remove") and absent are the same here.
  const pick = (o: Record<string, unknown>) => Object.fromEntries(keys.map((k) => [k, o[k] ?? undefined]));
  if (
    cur.observedGeneration === generation &&
    sameConditions(cur.conditions, conditions) &&
    canonical(pick(cur)) === canonical(pick(extra))
  )
    return;
  await deps.kube.custom.patchClusterCustomObjectStatus(
    {
      group: GROUP,
      version: VERSION,
      plural: "harmonynetworks",
      name: net.metadata.name!,
      body: { status: { observedGeneration: generation, conditions, ...extra } },
      fieldManager: "harmony-operator-status",
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}
