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
} from "../network/directory.js";
import { fetchExport, signExport, verifyExport } from "../network/federation.js";
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
  /** undefined when the operator may not list namespaces (namespaceSelector then unsupported). */
  namespaces: () => readonly NamespaceInfo[] | undefined;
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
  if (!certManager && before?.leaves) await removeCertificates(deps.kube, name);
  const orgs = memberOrgs(net, deps.namespaces());
  // In CertManager mode the operator's own CA only signs the federation export (its key never
  // issues a leaf): peers pin its fingerprint as before.
  const opCa = await ensureCa(deps.kube, deps.namespace, net, deps.readSecret, now);
  const gateways = memberGateways(net, orgs, caches.gateways.list());
  const certs = certManager ? await syncCertificates(deps, net, gateways, new Date(now)) : undefined;
  const ca = certs ? { ...opCa, bundlePem: certs.bundlePem } : opCa;
  const local = localEntries(net, gateways, caches.pipelines.list(), (ns, n) => caches.endpoints.get(n, ns));

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
      imports.set(peer.name, done.imp);
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

  const peerList = [...peers.values()].sort((a, b) => a.name.localeCompare(b.name));
  const synced = peerList.filter((p) => p.state === "Synced").length;
  const failing = peerList.filter((p) => p.state === "Error");
  const selectorUnsupported = net.spec.members.namespaceSelector && deps.namespaces() === undefined;
  await writeNetworkStatus(
    deps,
    net,
    [
      selectorUnsupported
        ? {
            type: "Ready",
            status: "False",
            reason: "SelectorUnsupported",
            message: "spec.members.namespaceSelector needs an operator that watches all namespaces",
          }
        : certs?.notReady.length
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
              reason: failing.length ? "PeersDegraded" : "Ready",
              message:
                `${orgs.length} org(s), ${gateways.length} gateway(s), ${local.length} endpoint(s)` +
                (peerList.length ? `; peers ${synced}/${peerList.length} synced` : "") +
                (failing.length ? ` (failing: ${failing.map((p) => p.name).join(", ")})` : ""),
            },
    ],
    {
      members: orgs,
      memberCount: orgs.length,
      gateways: gateways.length,
      endpoints: local.length,
      peers: peerList,
      peerSummary: `${synced}/${peerList.length}`,
      caFingerprint: ca.fingerprint,
    },
  );
  // cert-manager's Certificates and Secrets are polled (cert-manager.ts says why not watched).
  const certsAt = certs ? now + interval : Infinity;
  const due = Math.min(nextPeerAt, ca.nextStepAt ?? Infinity, exportRenewAt ?? Infinity, certsAt);
  return Number.isFinite(due) ? { requeueAfterMs: Math.max(100, due - Date.now()) } : {};
}

function enqueueEndpoints(deps: NetworkDeps, org: string): void {
  for (const e of deps.caches.endpoints.list(org)) deps.enqueue(`endpoint/${org}/${e.metadata.name}`);
}

// A re-signed export with the same content is the same import (only exp and serial differ).
const sameImport = (a: PeerImport, b: PeerImport) =>
  canonical({ ...a, exp: undefined, serial: undefined }) === canonical({ ...b, exp: undefined, serial: undefined });

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
  // From the cache of the operator's own ConfigMaps (it carries the managed-by label): no get verb needed.
  const cm = deps.caches.configMaps.get(importConfigMapName(network, peer), deps.namespace);
  const jws = cm?.data?.["export.jws"];
  if (!jws) return undefined;
  return verifyExport(jws, pin, peer, { ignoreExpiry: true }).catch((e: unknown) => {
    deps.logger.warn("Stored peer import no longer verifies; ignored", { network, peer, error: String(e) });
    return undefined;
  });
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
  const pick = (o: Record<string, unknown>) => Object.fromEntries(keys.map((k) => [k, o[k]]));
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
