/**
 * An HTTPRoute rule's backendRefs, resolved (pure) to pod addresses through the Service's
 * EndpointSlices, or to the reason they cannot be used: a kind other than Service (InvalidKind), a
 * Service in another namespace without a ReferenceGrant (RefNotPermitted), or none by that name
 * (BackendNotFound). An unusable backend keeps its weight and answers 500, as the spec asks.
 */
import type { V1Service } from "@kubernetes/client-node";
import type { BackendRef, EndpointSliceLike, HTTPRoute, ReferenceGrant } from "../api/gateway-api.js";
import { GW_GROUP } from "../api/gateway-api.js";
import { permitted } from "./grants.js";

export interface BackendLookups {
  service: (namespace: string, name: string) => V1Service | undefined;
  /** EndpointSlices labelled kubernetes.io/service-name=<name> in the namespace. */
  slices: (namespace: string, service: string) => readonly EndpointSliceLike[];
  grants: readonly ReferenceGrant[];
}

export type ResolvedBackend =
  | { weight: number; addresses: { ip: string; port: number }[] }
  | { weight: number; invalid: { reason: string; message: string } };

export function resolveBackend(route: HTTPRoute, ref: BackendRef, lookups: BackendLookups): ResolvedBackend {
  const weight = ref.weight ?? 1;
  const ns = ref.namespace ?? route.metadata.namespace ?? "";
  const invalid = (reason: string, message: string): ResolvedBackend => ({ weight, invalid: { reason, message } });
  if ((ref.group ?? "") !== "" || (ref.kind ?? "Service") !== "Service")
    return invalid("InvalidKind", `backendRef ${ref.group ?? ""}/${ref.kind}: only Services are supported`);
  const to = { group: "", kind: "Service", namespace: ns, name: ref.name };
  if (!permitted(lookups.grants, { group: GW_GROUP, kind: "HTTPRoute", namespace: route.metadata.namespace ?? "" }, to))
    return invalid("RefNotPermitted", `Service ${ns}/${ref.name}: no ReferenceGrant allows it`);
  const svc = lookups.service(ns, ref.name);
  if (!svc) return invalid("BackendNotFound", `Service ${ns}/${ref.name} not found`);
  const sp = svc.spec?.ports?.find((p) => p.port === ref.port);
  if (!sp) return invalid("BackendNotFound", `Service ${ns}/${ref.name} has no port ${ref.port}`);
  const addresses: { ip: string; port: number }[] = [];
  for (const slice of lookups.slices(ns, ref.name)) {
    if (slice.addressType && slice.addressType !== "IPv4" && slice.addressType !== "IPv6") continue;
    // The slice's port for the Service port, by name (unnamed: the only one).
    const port = (slice.ports ?? []).find((p) => (p.name ?? "") === (sp.name ?? ""))?.port;
    if (port === undefined) continue;
    for (const e of slice.endpoints ?? []) {
      if (e.conditions?.ready === false) continue;
      for (const ip of e.addresses) addresses.push({ ip, port });
    }
  }
  addresses.sort((a, b) => `${a.ip}:${a.port}`.localeCompare(`${b.ip}:${b.port}`));
  return { weight, addresses };
}

/** The first problem among a route's backends, for its ResolvedRefs condition. */
export function firstProblem(resolved: readonly ResolvedBackend[]): { reason: string; message: string } | undefined {
  for (const r of resolved) if ("invalid" in r) return r.invalid;
  return undefined;
}
