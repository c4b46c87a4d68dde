/**
 * A Gateway's listeners, validated (pure): which route kinds each takes, whether its protocol and
 * certificates can be served, conflicts between listeners on one port, and the conditions to
 * report. Listeners on one port share one data-plane network (one socket); HTTPS listeners on it
 * bring their certificates as SNI entries.
 */
import { createSecureContext } from "node:tls";
import type { Gateway, Listener, ReferenceGrant, RouteGroupKind } from "../api/gateway-api.js";
import { GW_GROUP } from "../api/gateway-api.js";
import type { SecretLookup } from "../translator/file-options.js";
import { permitted } from "./grants.js";
import { networkName } from "./names.js";

export interface GwCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export interface ListenerPlan {
  listener: Listener;
  network: string;
  supportedKinds: RouteGroupKind[];
  conditions: GwCondition[];
  /** Routes may attach (protocol served, HTTPRoute among its kinds). */
  acceptsRoutes: boolean;
  /** Served by the data plane (accepted, not conflicted, certificates resolved). */
  served: boolean;
  tls?: { cert: Buffer; key: Buffer; revision: string };
}

const SUPPORTED = new Set(["HTTP", "HTTPS"]);

export function planListeners(gw: Gateway, secrets: SecretLookup, grants: readonly ReferenceGrant[]): ListenerPlan[] {
  const ns = gw.metadata.namespace ?? "";
  const byPort = new Map<number, Listener[]>();
  for (const l of gw.spec.listeners) byPort.set(l.port, [...(byPort.get(l.port) ?? []), l]);
  return gw.spec.listeners.map((l) => {
    const conditions: GwCondition[] = [];
    const plan: ListenerPlan = {
      listener: l,
      network: networkName(l.port),
      supportedKinds: [],
      conditions,
      acceptsRoutes: false,
      served: false,
    };
    const protocolOk = SUPPORTED.has(l.protocol);
    // Kinds: HTTPRoute only; an unknown kind is dropped from supportedKinds and reported.
    const asked = l.allowedRoutes?.kinds;
    const valid = (k: RouteGroupKind) => (k.group ?? GW_GROUP) === GW_GROUP && k.kind === "HTTPRoute";
    plan.supportedKinds = protocolOk
      ? asked
        ? asked.filter(valid).map((k) => ({ group: GW_GROUP, kind: k.kind }))
        : [{ group: GW_GROUP, kind: "HTTPRoute" }]
      : [];
    const badKinds = (asked ?? []).filter((k) => !valid(k));
    // Conflicts on the port: another protocol, or the same hostname twice (the first listener keeps it).
    const peers = byPort.get(l.port) ?? [];
    const protocolConflict = peers.some((o) => o.protocol !== l.protocol);
    const first = peers.find((o) => (o.hostname ?? "") === (l.hostname ?? ""));
    const hostnameConflict = first !== undefined && first !== l;
    conditions.push(
      protocolConflict
        ? {
            type: "Conflicted",
            status: "True",
            reason: "ProtocolConflict",
            message: `port ${l.port} has other protocols`,
          }
        : hostnameConflict
          ? {
              type: "Conflicted",
              status: "True",
              reason: "HostnameConflict",
              message: `listener ${first.name} has this hostname on port ${l.port}`,
            }
          : { type: "Conflicted", status: "False", reason: "NoConflicts", message: "no conflicts" },
    );
    if (!protocolOk) {
      conditions.push({
        type: "Accepted",
        status: "False",
        reason: "UnsupportedProtocol",
        message: `protocol ${l.protocol} is not supported (HTTP, HTTPS)`,
      });
    } else {
      conditions.push({ type: "Accepted", status: "True", reason: "Accepted", message: "listener accepted" });
    }
    // References: route kinds, then certificates.
    let refs: GwCondition = {
      type: "ResolvedRefs",
      status: "True",
      reason: "ResolvedRefs",
      message: "all references resolved",
    };
    if (badKinds.length) {
      refs = {
        type: "ResolvedRefs",
        status: "False",
        reason: "InvalidRouteKinds",
        message: `unsupported route kinds: ${badKinds.map((k) => `${k.group ?? GW_GROUP}/${k.kind}`).join(", ")}`,
      };
    }
    if (protocolOk && l.protocol === "HTTPS" && refs.status === "True") {
      const r = resolveCertificate(l, ns, secrets, grants);
      if ("failure" in r) refs = { type: "ResolvedRefs", status: "False", ...r.failure };
      else plan.tls = r;
    }
    conditions.push(refs);
    plan.acceptsRoutes = protocolOk && plan.supportedKinds.length > 0 && !protocolConflict && !hostnameConflict;
    plan.served = plan.acceptsRoutes && refs.status === "True";
    conditions.push(
      plan.served
        ? { type: "Programmed", status: "True", reason: "Programmed", message: `served on network ${plan.network}` }
        : { type: "Programmed", status: "False", reason: "Invalid", message: "not served: see the other conditions" },
    );
    return plan;
  });
}

function resolveCertificate(
  l: Listener,
  ns: string,
  secrets: SecretLookup,
  grants: readonly ReferenceGrant[],
): { cert: Buffer; key: Buffer; revision: string } | { failure: { reason: string; message: string } } {
  if (l.tls?.mode === "Passthrough")
    return { failure: { reason: "InvalidCertificateRef", message: "TLS passthrough is not supported" } };
  const ref = l.tls?.certificateRefs?.[0];
  if (!ref) return { failure: { reason: "InvalidCertificateRef", message: "HTTPS needs tls.certificateRefs" } };
  const refNs = ref.namespace ?? ns;
  if ((ref.group ?? "") !== "" || (ref.kind ?? "Secret") !== "Secret")
    return {
      failure: {
        reason: "InvalidCertificateRef",
        message: `${ref.group ?? ""}/${ref.kind}: only core Secrets hold certificates`,
      },
    };
  const grant = { group: "", kind: "Secret", namespace: refNs, name: ref.name };
  if (!permitted(grants, { group: GW_GROUP, kind: "Gateway", namespace: ns }, grant))
    return {
      failure: { reason: "RefNotPermitted", message: `Secret ${refNs}/${ref.name}: no ReferenceGrant allows it` },
    };
  const found = secrets(refNs, ref.name);
  if (!found) return { failure: { reason: "InvalidCertificateRef", message: `Secret ${refNs}/${ref.name} not found` } };
  const cert = found.data["tls.crt"];
  const key = found.data["tls.key"];
  try {
    if (!cert?.length || !key?.length) throw new Error("tls.crt or tls.key missing");
    createSecureContext({ cert, key });
  } catch (e) {
    // The library's message names the PEM problem, never the key material.
    return {
      failure: {
        reason: "InvalidCertificateRef",
        message: `Secret ${refNs}/${ref.name}: not a usable certificate and key (${(e as Error).message})`,
      },
    };
  }
  return { cert, key, revision: `${refNs}/${ref.name}@${found.revision}` };
}
