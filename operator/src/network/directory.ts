/**
 * What a network looks like from the cluster state, as pure functions: its member orgs, its member
 * gateways, the directory of endpoint URIs they serve, and the directory.json document and TOML
 * tables the data plane reads (the issue-17 contract fixes their shape).
 */
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline } from "../api/v1alpha1.js";
import type { HarmonyNetwork, NetworkPolicy } from "../api/network.js";
import { attachment } from "../runner/attachment.js";
import { posix } from "node:path";
import { CONFIG_DIR } from "../translator/render.js";
import { spiffeId } from "./pki.js";

/** Where a gateway's network files are mounted; one directory per network. */
export const NET_DIR = "/etc/harmony/net";
/** Overrides the address peers and other gateways dial for this gateway (default: its Service's DNS name). */
export const ADDRESS_ANNOTATION = "harmony.runbeam.io/network-address";
export const DEFAULT_LISTENER = "harmony";

export interface DirectoryEntry {
  uri: string;
  org: string;
  endpoint: string;
  protocol: "http" | "fhir" | "dicomweb" | "dicom";
  address: string;
  port: number;
  path_prefix?: string;
  ae_title?: string;
  identity: string;
}

export interface Directory {
  version: 1;
  network: string;
  domain: string;
  groups: { network: string; orgs: string[] }[];
  entries: DirectoryEntry[];
  policies: Record<string, unknown>[];
}

export interface NamespaceInfo {
  name: string;
  labels: Record<string, string>;
}

export const endpointUri = (domain: string, org: string, endpoint: string) => `harmony://${domain}/${org}/${endpoint}`;

/** A member the operator leaves out, and why (network status `skipped`). */
export interface SkippedMember {
  kind: "Org" | "HarmonyGateway";
  /** The org, or the gateway as namespace/name. */
  name: string;
  reason: string;
  message: string;
}

/**
 * Member orgs, sorted: listed ones plus namespaces matching the selector. `watched` (an operator
 * run with --watch-namespaces) bounds them: `namespaces` then holds only the watched namespaces
 * (read one by one), and a listed org outside them is skipped, with the reason, rather than
 * dropped unseen: the operator can neither see its endpoints nor write its gateways' files.
 */
export function memberOrgs(
  net: HarmonyNetwork,
  namespaces: readonly NamespaceInfo[],
  watched?: readonly string[],
): { orgs: string[]; skipped: SkippedMember[] } {
  const orgs = new Set(net.spec.members.orgs ?? []);
  const sel = net.spec.members.namespaceSelector?.matchLabels;
  if (sel) {
    const want = Object.entries(sel);
    for (const ns of namespaces) if (want.every(([k, v]) => ns.labels[k] === v)) orgs.add(ns.name);
  }
  const skipped: SkippedMember[] = [];
  if (watched) {
    for (const org of orgs) {
      if (watched.includes(org)) continue;
      orgs.delete(org);
      skipped.push({
        kind: "Org",
        name: org,
        reason: "NamespaceNotWatched",
        message: `namespace ${org} is not watched by this operator (--watch-namespaces ${watched.join(",")})`,
      });
    }
  }
  return { orgs: [...orgs].sort(), skipped: skipped.sort((a, b) => a.name.localeCompare(b.name)) };
}

/** Gateways of member orgs that have the network's listener, sorted by namespace/name. */
export function memberGateways(net: HarmonyNetwork, orgs: readonly string[], gateways: readonly HarmonyGateway[]) {
  const listener = net.spec.listener ?? DEFAULT_LISTENER;
  const set = new Set(orgs);
  return gateways
    .filter((g) => set.has(g.metadata.namespace ?? "") && !g.metadata.deletionTimestamp)
    .filter((g) => g.spec.networks.some((n) => n.name === listener))
    .sort((a, b) => key(a).localeCompare(key(b)));
}

const key = (o: { metadata: { namespace?: string; name?: string } }) => `${o.metadata.namespace}/${o.metadata.name}`;

/**
 * Where other gateways dial this one: the annotation, else its Service's DNS name. A Sidecar-mode
 * gateway has no Service of its own (it is reached through its application's Service, whose name
 * the operator cannot know), so without the annotation it has no address: undefined.
 */
export const gatewayAddress = (gw: HarmonyGateway): string | undefined =>
  gw.metadata.annotations?.[ADDRESS_ANNOTATION] ??
  ((gw.spec.mode ?? "Deployment") === "Sidecar"
    ? undefined
    : `${gw.metadata.name}-harmony.${gw.metadata.namespace}.svc`);

/** Why a Sidecar-mode gateway's endpoints are not in the directory (network and gateway status). */
export const noAddressMessage = (gw: HarmonyGateway, network: string, port: number) =>
  `Sidecar-mode gateway ${gw.metadata.namespace}/${gw.metadata.name} has no Service of its own: its endpoints ` +
  `are left out of network "${network}"'s directory until its ${ADDRESS_ANNOTATION} annotation names the ` +
  `address peers dial (the application's Service, which must expose port ${port}); it still calls out`;

/**
 * Local entries: every endpoint a member gateway serves on the network's listener, through a
 * pipeline of the gateway's own org (an endpoint is never shared outside its org, and the entry's
 * identity names the gateway's org). First gateway by name wins a URI served twice. A gateway
 * without an address (gatewayAddress) lists nothing and is returned in `skipped` when it would
 * have listed something.
 */
export function localEntries(
  net: HarmonyNetwork,
  gateways: readonly HarmonyGateway[],
  pipelines: readonly HarmonyPipeline[],
  endpoint: (namespace: string, name: string) => HarmonyEndpoint | undefined,
): { entries: DirectoryEntry[]; skipped: SkippedMember[] } {
  const domain = net.spec.domain;
  const listener = net.spec.listener ?? DEFAULT_LISTENER;
  const out = new Map<string, DirectoryEntry>();
  const skipped: SkippedMember[] = [];
  for (const gw of gateways) {
    const org = gw.metadata.namespace ?? "";
    const port = gw.spec.networks.find((n) => n.name === listener)?.port;
    if (port === undefined) continue;
    const address = gatewayAddress(gw);
    const mine = new Map<string, DirectoryEntry>();
    for (const p of pipelines) {
      if (p.metadata.namespace !== org || !attachment(gw, p).attached) continue;
      if (p.spec.networks && !p.spec.networks.includes(listener)) continue;
      for (const ref of p.spec.endpoints) {
        const ep = endpoint(org, ref.name);
        if (!ep) continue;
        const protocol = ep.spec.service;
        if (!isDirectoryProtocol(protocol)) continue; // jmix, echo: not in the contract's protocols
        const uri = endpointUri(domain, org, ref.name);
        if (out.has(uri) || mine.has(uri)) continue;
        mine.set(uri, {
          uri,
          org,
          endpoint: ref.name,
          protocol,
          address: address ?? "",
          port: protocol === "dicom" ? (ep.spec.port ?? port) : port,
          ...(protocol === "dicom" ? { ae_title: ep.spec.aeTitle } : { path_prefix: ep.spec.pathPrefix }),
          identity: spiffeId(domain, org, gw.metadata.name ?? ""),
        });
      }
    }
    if (address !== undefined) for (const [uri, e] of mine) out.set(uri, e);
    else if (mine.size) {
      skipped.push({
        kind: "HarmonyGateway",
        name: `${org}/${gw.metadata.name}`,
        reason: "NoNetworkAddress",
        message: noAddressMessage(gw, net.metadata.name ?? "", port),
      });
    }
  }
  return { entries: [...out.values()].sort((a, b) => a.uri.localeCompare(b.uri)), skipped };
}

const DIRECTORY_PROTOCOLS = ["http", "fhir", "dicomweb", "dicom"] as const;
function isDirectoryProtocol(p: string): p is DirectoryEntry["protocol"] {
  return (DIRECTORY_PROTOCOLS as readonly string[]).includes(p);
}

/** The entries spec.export selects. */
export function exportedEntries(net: HarmonyNetwork, entries: readonly DirectoryEntry[]): DirectoryEntry[] {
  const sel = net.spec.export?.endpoints ?? [];
  return entries.filter((e) => sel.some((s) => s.org === e.org && (s.name === undefined || s.name === e.endpoint)));
}

/** Member orgs spec.export selects (each `export.endpoints` item names one). */
export function exportedOrgs(net: HarmonyNetwork, members: readonly string[]): string[] {
  const sel = new Set((net.spec.export?.endpoints ?? []).map((s) => s.org));
  return members.filter((o) => sel.has(o));
}

/** The contract's policy shape: camelCase CRD fields to the data plane's snake_case. */
export function renderPolicy(p: NetworkPolicy): Record<string, unknown> {
  return {
    name: p.name,
    action: p.action,
    ...(p.source ? { source: p.source } : {}),
    ...(p.destination ? { destination: p.destination } : {}),
    ...(p.operations
      ? {
          operations: p.operations.map(({ resourceTypes, ...o }) => ({
            ...o,
            ...(resourceTypes ? { resource_types: resourceTypes } : {}),
          })),
        }
      : {}),
  };
}

/** Imported entries from one peer, as verified. */
export interface PeerImport {
  peer: string;
  network: string;
  domain: string;
  entries: DirectoryEntry[];
  /** The peer's member orgs its export selects (federation.ts ExportPayload.orgs). */
  orgs?: string[];
  trustBundlePem: string;
  /** When the peer signed it (ms): a fetched export older than the held one is a replay. */
  serial?: number;
  /** The export's own expiry (s since epoch); federation.ts importValidUntil caps it. */
  exp?: number;
  /**
   * When this peer was first imported (ms; its stored import's creation time after a restart):
   * of two peers claiming one org, the earlier keeps it (trust-bundle.ts orgClaims).
   */
  firstImportedAt?: number;
}

/**
 * directory.json. Imported entries never replace a local URI, and a peer's entries enter only for
 * the orgs it holds (`claims`: an org another peer was imported with first, or a local one, is not
 * its to serve). A peer's orgs share our group only when the peer is the same logical network
 * (same name and domain) spread over another cluster; any other peer's orgs get a group of their
 * own (known peers, so explicit allow rules can admit them; default deny), named as policies name
 * them: `<domain>/<org>` when the peer's domain is not ours.
 */
export function directoryDoc(
  net: HarmonyNetwork,
  orgs: readonly string[],
  local: readonly DirectoryEntry[],
  imports: readonly PeerImport[],
  claims: { byPeer: ReadonlyMap<string, readonly string[]> },
): Directory {
  const name = net.metadata.name ?? "";
  const domain = net.spec.domain;
  const byUri = new Map(local.map((e) => [e.uri, e]));
  const groupOrgs = new Set(orgs);
  const others = new Map<string, Set<string>>();
  for (const imp of imports) {
    const held = new Set(claims.byPeer.get(imp.peer) ?? []);
    const shown = (org: string) => (imp.domain === domain ? org : `${imp.domain}/${org}`);
    for (const e of imp.entries) if (!byUri.has(e.uri) && held.has(shown(e.org))) byUri.set(e.uri, e);
    if (imp.network === name && imp.domain === domain) for (const o of held) groupOrgs.add(o);
    else if (held.size) {
      const g = others.get(imp.network) ?? new Set<string>();
      for (const o of held) g.add(o);
      others.set(imp.network, g);
    }
  }
  return {
    version: 1,
    network: name,
    domain,
    groups: [
      { network: name, orgs: [...groupOrgs].sort() },
      ...[...others.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([network, set]) => ({ network, orgs: [...set].sort() })),
    ],
    entries: [...byUri.values()].sort((a, b) => a.uri.localeCompare(b.uri)),
    policies: (net.spec.policies ?? []).map(renderPolicy),
  };
}

/**
 * `[harmony_networks.<name>]` for one member gateway (contract keys). Paths are relative to the
 * config directory (`../net/<name>/...`), as file options render `../secrets/<key>`: the data plane
 * resolves them from its config file, so the pod's mounts (NET_DIR beside CONFIG_DIR) and a data
 * plane run elsewhere from the same sibling directories read the same files.
 */
export function networkTable(net: HarmonyNetwork, org: string, withExport: boolean): Record<string, unknown> {
  const dir = posix.relative(CONFIG_DIR, `${NET_DIR}/${net.metadata.name}`);
  return {
    domain: net.spec.domain,
    org,
    cert_path: `${dir}/tls.crt`,
    key_path: `${dir}/tls.key`,
    trust_bundle_path: `${dir}/ca.crt`,
    directory_path: `${dir}/directory.json`,
    ...(withExport ? { export_path: `${dir}/export.jws` } : {}),
  };
}

/** The files of one network in the gateway's network Secret: key `<network>.<file>`. */
export const NET_FILES = ["tls.crt", "tls.key", "ca.crt", "directory.json", "export.jws"] as const;
export const netSecretKey = (network: string, file: (typeof NET_FILES)[number]) => `${network}.${file}`;
