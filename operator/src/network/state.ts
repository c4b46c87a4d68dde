/**
 * What the network reconciler knows about each network and the gateway and endpoint reconcilers
 * read: member orgs, the CA, the local entries, verified peer imports, the signed export. Held in
 * memory by the leader; everything in it is rebuilt from the apiserver (CA Secret, stored peer
 * imports) on the first reconcile after a start.
 */
import { createHash } from "node:crypto";
import type { HarmonyNetwork, PeerStatus } from "../api/network.js";
import type { CaState } from "./ca-store.js";
import type { Leaf } from "./pki.js";
import { directoryDoc, type DirectoryEntry, type PeerImport, type SkippedMember } from "./directory.js";
import { orgClaims, trustBundle, type OrgConflict } from "./trust-bundle.js";

export interface NetworkRuntime {
  net: HarmonyNetwork;
  orgs: string[];
  /** "namespace/name" of the member gateways. */
  gateways: string[];
  /** With spec.ca.mode CertManager, bundlePem is the issuer's CA (current only signs the export). */
  ca: CaState;
  /**
   * CertManager mode only: each member gateway's leaf from the Secret cert-manager filled. A
   * gateway without one (not issued yet) gets no files for this network.
   */
  leaves?: Map<string, Leaf>;
  local: DirectoryEntry[];
  imports: Map<string, PeerImport>;
  /**
   * Peers whose import was dropped because no fresher export came before it lapsed
   * (importValidUntil): the newest signing time seen (an older export is a replay, refused as
   * while it was held) and when it lapsed. Cleared by the next export accepted.
   */
  lapsed: Map<string, { serial: number; at: number }>;
  peers: Map<string, PeerStatus>;
  /** Peers whose stored import has been loaded (or found absent) since start. */
  loaded: Set<string>;
  exportJws?: string;
  exportKey?: string;
  exportRenewAt?: number;
  /** Members left out (unwatched orgs, Sidecar gateways without an address), with the reason. */
  skipped: SkippedMember[];
  /** directory.json text and trust bundle, the same for every member gateway. */
  directoryJson: string;
  trustBundlePem: string;
  /** Orgs a peer's export named that another (earlier) peer or this cluster holds. */
  conflicts: OrgConflict[];
  /** Digest of the network files (directory, bundle, export, CA) member gateways hold. */
  digest: string;
  /** Digest of what member gateways' config.toml says about this network (tables, listener). */
  configDigest: string;
}

/** What a finished peer fetch left for the next reconcile. */
export type PeerResult = { at: string } & ({ jws: string; imp: PeerImport } | { error: string });

export class NetworkRegistry {
  private readonly byName = new Map<string, NetworkRuntime>();
  private readonly fetching = new Set<string>();
  private readonly results = new Map<string, PeerResult>();
  private readonly foreign = new Set<string>();

  /**
   * Runs a peer fetch outside the reconcile (a peer that accepts and never answers must not hold
   * the network worker, and with it every local directory change, for the fetch's timeout), and
   * calls `then` when its result is ready for takeResult. One fetch per slot at a time.
   */
  startFetch(slot: string, fetch: () => Promise<{ jws: string; imp: PeerImport }>, then: () => void): boolean {
    if (this.fetching.has(slot)) return false;
    this.fetching.add(slot);
    const at = new Date().toISOString();
    void fetch()
      .then(
        (r) => this.results.set(slot, { at, ...r }),
        (e: unknown) => this.results.set(slot, { at, error: (e as Error).message.slice(0, 1000) }),
      )
      .finally(() => {
        this.fetching.delete(slot);
        then();
      });
    return true;
  }
  isFetching(slot: string): boolean {
    return this.fetching.has(slot);
  }
  takeResult(slot: string): PeerResult | undefined {
    const r = this.results.get(slot);
    this.results.delete(slot);
    return r;
  }

  get(name: string): NetworkRuntime | undefined {
    return this.byName.get(name);
  }
  set(name: string, rt: NetworkRuntime): void {
    this.byName.set(name, rt);
    this.foreign.delete(name);
  }
  delete(name: string): void {
    this.byName.delete(name);
    this.foreign.delete(name);
  }
  /**
   * Reconciled and found not ours (another operator's, or no member among a scoped operator's
   * namespaces): a change in a namespace it does not list need not reconcile it again.
   */
  markForeign(name: string): void {
    this.foreign.add(name);
  }
  isForeign(name: string): boolean {
    return this.foreign.has(name);
  }
  /** Networks sorted by name. */
  all(): NetworkRuntime[] {
    return [...this.byName.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, rt]) => rt);
  }
  /** Networks whose member orgs include `org`, sorted by name. */
  ofOrg(org: string): NetworkRuntime[] {
    return this.all().filter((rt) => rt.orgs.includes(org));
  }
}

/** Fills in the derived fields (directory, bundle, digest) from the rest. */
export function finish(
  rt: Omit<NetworkRuntime, "directoryJson" | "trustBundlePem" | "conflicts" | "digest" | "configDigest">,
): NetworkRuntime {
  // First imported first: that order decides who holds an org two peers claim (orgClaims).
  const imports = [...rt.imports.values()].sort(
    (a, b) => (a.firstImportedAt ?? Infinity) - (b.firstImportedAt ?? Infinity) || a.peer.localeCompare(b.peer),
  );
  const claims = orgClaims(rt.net.spec.domain, rt.orgs, imports);
  const directoryJson = JSON.stringify(directoryDoc(rt.net, rt.orgs, rt.local, imports, claims), null, 2) + "\n";
  // Peer CAs join ours (a peer gateway's leaf verifies against its own network's CA), each bound
  // to the orgs it may vouch for.
  const trustBundlePem = trustBundle(rt.ca.bundlePem, rt.orgs, imports, claims);
  const leaves = [...(rt.leaves ?? new Map<string, Leaf>()).entries()].sort(([a], [b]) => a.localeCompare(b));
  const digest = createHash("sha256")
    .update(directoryJson)
    .update(trustBundlePem)
    .update(rt.ca.current.caPem)
    .update(rt.exportJws ?? "")
    // A renewal by cert-manager is a new leaf: member gateways get new files.
    .update(leaves.map(([g, l]) => `${g}\0${l.certPem}`).join("\0"))
    .digest("hex");
  // What networkTable() and the listener key depend on: a change here needs a full gateway render
  // (in CertManager mode a gateway joins the network's tables once its certificate is issued).
  const configDigest = createHash("sha256")
    // Skipped gateways too: each reports it in its own status (gateway-reconciler.ts).
    .update(
      JSON.stringify([
        rt.gateways,
        rt.net.spec.listener ?? "",
        rt.net.spec.domain,
        rt.exportJws !== undefined,
        rt.skipped.filter((m) => m.kind === "HarmonyGateway"),
        rt.leaves ? leaves.map(([g]) => g) : null,
      ]),
    )
    .digest("hex");
  return { ...rt, directoryJson, trustBundlePem, conflicts: claims.conflicts, digest, configDigest };
}
