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
import {
  DEFAULT_EXPORT_VALIDITY_SECONDS,
  DEFAULT_MAX_IMPORT_VALIDITY_SECONDS,
  fetchExport,
  importValidUntil,
  signExport,
  verifyExport,
} from "../network/federation.js";
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
  /** Counts peer imports dropped because they lapsed (harmony_operator_network_peer_imports_expired_total). */
  metrics?: { peerImportExpired: (network: string, peer: string) => void };
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
  const lapsed = new Map(before?.lapsed ?? []);
  const peers = new Map(before?.peers ?? []);
  const loaded = new Set(before?.loaded ?? []);
  const interval = (net.spec.syncIntervalSeconds ?? 30) * 1000;
  const wanted = new Set((net.spec.peers ?? []).map((p) => p.name));
  for (const k of [...imports.keys()]) if (!wanted.has(k)) imports.delete(k);
  for (const k of [...peers.keys()]) if (!wanted.has(k)) peers.delete(k);
  for (const k of [...lapsed.keys()]) if (!wanted.has(k)) lapsed.delete(k);
  let nextPeerAt = Infinity;
  let nextLapseAt = Infinity;
  const iso = (ms: number) => new Date(ms).toISOString();
  for (const peer of net.spec.peers ?? []) {
    const cap = peer.maxValiditySeconds ?? DEFAULT_MAX_IMPORT_VALIDITY_SECONDS;
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
    // entries, orgs and CAs, so it is refused and the newer import stays. The same after the held
    // import lapsed (`lapsed` keeps its signing time): an older export must not bring back what
    // the peer stopped vouching for.
    const held = imports.get(peer.name)?.serial ?? lapsed.get(peer.name)?.serial;
    const replayed =
      done && "imp" in done && held !== undefined && done.imp.serial !== undefined && done.imp.serial < held
        ? `export signed at ${iso(done.imp.serial)} is older than the one imported ` +
          `(${iso(held)}): a replayed export is refused`
        : undefined;
    // Far-future `exp`: trusted only up to `cap` after its signing time, so one signed longer ago is stale.
    const stale =
      done && "imp" in done && !replayed && importValidUntil(done.imp, cap) <= now
        ? `export signed at ${iso(done.imp.serial ?? 0)} is older than this peer's maxValiditySeconds (${cap} s): refused`
        : undefined;
    const refusal = replayed ?? stale;
    if (done && "imp" in done && !refusal) {
      const prev = imports.get(peer.name);
      // A new signature is stored even with the same content: after a restart the stored copy's
      // expiry is the one enforced (a peer away at that moment must not lose a still-valid import).
      if (!prev || !sameImport(prev, done.imp) || prev.serial !== done.imp.serial)
        await storeImport(deps, name, peer.name, done.jws);
      // A peer keeps its place in the claim order (trust-bundle.ts orgClaims) across re-exports.
      imports.set(peer.name, { ...done.imp, firstImportedAt: prev?.firstImportedAt ?? now });
      lapsed.delete(peer.name);
      Object.assign(st, { state: "Synced", lastSyncTime: done.at, entries: done.imp.entries.length });
      delete st.lastError;
    } else if (done) {
      // The last good import stays until it lapses (below): a peer away for a while leaves local
      // traffic and its entries alone.
      Object.assign(st, {
        state: "Error",
        lastError: refusal ?? ("error" in done ? done.error : ""),
        entries: imports.get(peer.name)?.entries.length ?? 0,
      });
      deps.logger.warn("Peer sync failed", { network: name, peer: peer.name, error: st.lastError });
    }
    // Nothing tells us when a peer stops vouching for an org in a way we cannot fetch (every
    // gateway serving its export gone): an import not refreshed within its validity is dropped,
    // with its entries and its CA's place in the trust bundle.
    const cur = imports.get(peer.name);
    const until = cur && importValidUntil(cur, cap);
    if (cur && until !== undefined && until <= now) {
      imports.delete(peer.name);
      lapsed.set(peer.name, { serial: cur.serial ?? 0, at: until });
      deps.metrics?.peerImportExpired(name, peer.name);
      Object.assign(st, {
        state: "Expired",
        entries: 0,
        lastError: lapsedMessage(lapsed.get(peer.name)!, st.state === "Error" ? st.lastError : undefined),
      });
      deps.logger.warn("Peer import lapsed and was dropped", { network: name, peer: peer.name, error: st.lastError });
    } else if (until !== undefined) {
      nextLapseAt = Math.min(nextLapseAt, until);
    } else if (lapsed.has(peer.name) && st.state === "Error") {
      // A later fetch failed (or was refused) too: still Expired, with that fetch's error.
      Object.assign(st, { state: "Expired", lastError: lapsedMessage(lapsed.get(peer.name)!, st.lastError) });
    }
    if (until !== undefined) st.validUntil = iso(until);
    else if (!lapsed.has(peer.name)) delete st.validUntil;
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

  // The export: re-signed when its content or validity changes or half its lifetime has passed.
  let { exportJws, exportKey, exportRenewAt } = before ?? {};
  const exported = exportedEntries(net, local);
  if (net.spec.export?.endpoints?.length) {
    const validity = net.spec.export.validitySeconds ?? DEFAULT_EXPORT_VALIDITY_SECONDS;
    const payload = {
      network: name,
      domain: net.spec.domain,
      issuer_cluster: deps.clusterName,
      entries: exported,
      orgs: exportedOrgs(net, orgs),
      // The signing CA is in it either way: a peer checks that it is (federation.ts).
      trust_bundle_pem: certs ? ca.bundlePem + opCa.current.caPem.trim() + "\n" : ca.bundlePem,
    };
    // The validity too: a shorter one must reach peers now, not at the old one's half-life.
    const key = createHash("sha256")
      .update(canonical(payload))
      .update(ca.current.caPem)
      .update(String(validity))
      .digest("hex");
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
    lapsed,
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
  const expired = peerList.filter((p) => p.state === "Expired");
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
              : expired.length
                ? "PeerImportsExpired"
                : failing.length
                  ? "PeersDegraded"
                  : rt.conflicts.length
                    ? "PeerOrgConflict"
                    : "Ready",
            message:
              `${orgs.length} org(s), ${gateways.length} gateway(s), ${local.length} endpoint(s)` +
              (peerList.length ? `; peers ${synced}/${peerList.length} synced` : "") +
              (failing.length ? ` (failing: ${failing.map((p) => p.name).join(", ")})` : "") +
              (expired.length
                ? `; imports dropped, not refreshed within their validity: ${expired.map((p) => p.name).join(", ")}`
                : "") +
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
  const due = Math.min(
    nextPeerAt,
    nextLapseAt,
    ca.nextStepAt ?? Infinity,
    exportRenewAt ?? Infinity,
    relabelAt,
    certsAt,
  );
  return Number.isFinite(due) ? { requeueAfterMs: Math.max(100, due - Date.now()) } : {};
}

/** Why an Expired peer has no import: what lapsed, when, and the last fetch's error. */
const lapsedMessage = (l: { serial: number; at: number }, lastFetch: string | undefined) =>
  `import signed at ${new Date(l.serial).toISOString()} lapsed at ${new Date(l.at).toISOString()} with no ` +
  `fresher export verified; its entries and CA are dropped (last fetch: ${lastFetch ?? "none failed"})`;

function enqueueEndpoints(deps: NetworkDeps, org: string): void {
  for (const e of deps.caches.endpoints.list(org)) deps.enqueue(`endpoint/${org}/${e.metadata.name}`);
}

// A re-signed export with the same content is the same import (only exp and serial differ).
const sameImport = (a: PeerImport, b: PeerImport) =>
  canonical({ ...a, exp: undefined, serial: undefined, firstImportedAt: undefined }) ===
  canonical({ ...b, exp: undefined, serial: undefined, firstImportedAt: undefined });

/**
 * The last verified export of a peer, kept so a restart still has it (within its validity: past
 * it, it is read back only for its signing time, the floor below which a fetched export is a replay).
 */
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
