/**
 * A member gateway's share of its networks: the `[harmony_networks.*]` TOML and listener keys, and
 * its network Secret (`<gateway>-harmony-net`: per network the workload leaf and key, the trust
 * bundle, directory.json and the signed export), mounted at NET_DIR/<network>/. The leaf is kept
 * while it is current (leafIsCurrent) and re-issued otherwise: new SAN, new CA, two thirds of its
 * life gone. In CertManager mode the leaf is cert-manager's (the network runtime's `leaves`).
 */
import { createHash } from "node:crypto";
import TOML from "@iarna/toml";
import type { V1Secret } from "@kubernetes/client-node";
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { DEFAULT_LISTENER, NET_DIR, NET_FILES, netSecretKey, networkTable } from "./directory.js";
import { issueLeaf, leafIsCurrent, leafRenewAt, spiffeId, type Leaf } from "./pki.js";
import type { NetworkRegistry } from "./state.js";

export const netSecretName = (gw: HarmonyGateway) => `${gw.metadata.name}-harmony-net`;

export interface GatewayNetworks {
  /** Network names this gateway is a member of, sorted. */
  names: string[];
  /** Mutates config.toml's document: adds harmony_networks and the listeners' harmony_network. */
  decorate: (doc: Record<string, unknown>) => void;
  /** Secret data (files by key). */
  data: Record<string, Buffer>;
  /** The same files by the path they are mounted at in the pod (NET_DIR/<network>/<file>). */
  mounted: Record<string, Buffer>;
  /** sha256 over the data, for a write only on change. */
  hash: string;
  /** Earliest leaf renewal due (ms since epoch). */
  renewAt?: number;
  /**
   * Network listeners left out of the config until their certificate exists (CertManager mode, not
   * issued yet): never served without the mutual TLS they stand for, as a listener whose TLS Secret
   * is missing (translator/gateway-tls.ts).
   */
  unavailable: Map<string, { reason: string; message: string }>;
}

export function gatewayNetworks(
  gw: HarmonyGateway,
  registry: NetworkRegistry | undefined,
  existing: V1Secret | undefined,
  now = new Date(),
): GatewayNetworks {
  const id = `${gw.metadata.namespace}/${gw.metadata.name}`;
  // CertManager mode: a gateway joins a network once cert-manager has issued its certificate.
  const all = (registry?.all() ?? []).filter((rt) => rt.gateways.includes(id));
  const member = all.filter((rt) => !rt.leaves || rt.leaves.has(id));
  const unavailable = new Map<string, { reason: string; message: string }>();
  for (const rt of all.filter((r) => !member.includes(r))) {
    const name = rt.net.metadata.name!;
    unavailable.set(rt.net.spec.listener ?? DEFAULT_LISTENER, {
      reason: "CertificateNotReady",
      message: `HarmonyNetwork ${name}: cert-manager has not issued this gateway's certificate yet (Certificate ${gw.metadata.namespace}/${gw.metadata.name}-harmony-${name}; the network's Ready condition says why)`,
    });
  }
  const org = gw.metadata.namespace ?? "";
  const data: Record<string, Buffer> = {};
  const mounted: Record<string, Buffer> = {};
  const old = (k: string) =>
    existing?.data?.[k] ? Buffer.from(existing.data[k], "base64").toString("utf8") : undefined;
  let renewAt: number | undefined;
  for (const rt of member) {
    const name = rt.net.metadata.name!;
    const uri = spiffeId(rt.net.spec.domain, org, gw.metadata.name ?? "");
    let leaf: Partial<Leaf> | undefined = rt.leaves?.get(id);
    if (!leaf) {
      leaf = { certPem: old(netSecretKey(name, "tls.crt")), keyPem: old(netSecretKey(name, "tls.key")) };
      if (!leafIsCurrent(leaf, rt.ca.current.caPem, uri, now)) {
        leaf = issueLeaf(rt.ca.current, uri, rt.net.spec.ca?.leafValiditySeconds ?? 2_592_000, now);
      }
      renewAt = Math.min(renewAt ?? Infinity, leafRenewAt(leaf.certPem!));
    }
    data[netSecretKey(name, "tls.crt")] = Buffer.from(leaf.certPem!);
    data[netSecretKey(name, "tls.key")] = Buffer.from(leaf.keyPem!);
    data[netSecretKey(name, "ca.crt")] = Buffer.from(rt.trustBundlePem);
    data[netSecretKey(name, "directory.json")] = Buffer.from(rt.directoryJson);
    if (rt.exportJws) data[netSecretKey(name, "export.jws")] = Buffer.from(rt.exportJws);
    for (const f of NET_FILES) {
      const v = data[netSecretKey(name, f)];
      if (v) mounted[`${NET_DIR}/${name}/${f}`] = v;
    }
  }
  const h = createHash("sha256");
  for (const k of Object.keys(data).sort()) h.update(k).update("\0").update(data[k]!);
  for (const k of [...unavailable.keys()].sort()) h.update("unavailable\0").update(k);
  return {
    names: member.map((rt) => rt.net.metadata.name!),
    decorate: (doc) => {
      if (!member.length) return;
      const tables: Record<string, unknown> = {};
      const network = doc.network as Record<string, Record<string, unknown>>;
      for (const rt of member) {
        const name = rt.net.metadata.name!;
        tables[name] = networkTable(rt.net, org, rt.exportJws !== undefined);
        const listener = network[rt.net.spec.listener ?? DEFAULT_LISTENER];
        if (listener) listener.harmony_network = name;
      }
      doc.harmony_networks = tables;
    },
    data,
    mounted,
    hash: h.digest("hex"),
    ...(renewAt !== undefined ? { renewAt } : {}),
    unavailable,
  };
}

/** The networks a rendered config.toml names (`[harmony_networks.*]`); none when it does not parse. */
export function networksIn(configToml: string | undefined): string[] {
  if (configToml === undefined) return [];
  try {
    return Object.keys((TOML.parse(configToml).harmony_networks as Record<string, unknown> | undefined) ?? {});
  } catch {
    return [];
  }
}

export { NET_FILES };
