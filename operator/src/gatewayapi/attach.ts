/**
 * Which listeners of a Gateway an HTTPRoute attaches to through each of its parentRefs (pure):
 * sectionName and port narrow the listeners, allowedRoutes.namespaces decides whether the route's
 * namespace may attach, and the hostnames must intersect. The route's Accepted condition for
 * that parent says why not, with the Gateway API's reasons.
 */
import type { Gateway, HTTPRoute, LabelSelector, ParentReference } from "../api/gateway-api.js";
import { GW_GROUP } from "../api/gateway-api.js";
import { intersect } from "./hostnames.js";
import type { GwCondition, ListenerPlan } from "./listeners.js";

export interface ParentAttachment {
  parentRef: ParentReference;
  accepted: GwCondition;
  /** Listeners the route is attached to, with the hostnames it serves there (undefined: any). */
  listeners: { plan: ListenerPlan; hostnames: string[] | undefined }[];
}

/** Does this parentRef name this Gateway? */
export function refersTo(route: HTTPRoute, ref: ParentReference, gw: Gateway): boolean {
  return (
    (ref.group ?? GW_GROUP) === GW_GROUP &&
    (ref.kind ?? "Gateway") === "Gateway" &&
    (ref.namespace ?? route.metadata.namespace) === gw.metadata.namespace &&
    ref.name === gw.metadata.name
  );
}

export function attach(
  route: HTTPRoute,
  ref: ParentReference,
  gw: Gateway,
  plans: readonly ListenerPlan[],
  namespaceLabels: (ns: string) => Record<string, string> | undefined,
): ParentAttachment {
  const named = plans.filter(
    (p) =>
      (ref.sectionName === undefined || p.listener.name === ref.sectionName) &&
      (ref.port === undefined || p.listener.port === ref.port),
  );
  const fail = (reason: string, message: string): ParentAttachment => ({
    parentRef: ref,
    accepted: { type: "Accepted", status: "False", reason, message },
    listeners: [],
  });
  if (named.length === 0)
    return fail("NoMatchingParent", `Gateway ${gw.metadata.namespace}/${gw.metadata.name} has no such listener`);
  const routeNs = route.metadata.namespace ?? "";
  const allowed = named.filter((p) => p.acceptsRoutes && namespaceAllowed(p, gw, routeNs, namespaceLabels));
  if (allowed.length === 0) return fail("NotAllowedByListeners", "no listener allows this route (kind or namespace)");
  const listeners = allowed
    .map((plan) => ({ plan, hostnames: intersect(plan.listener.hostname, route.spec.hostnames) }))
    .filter((l) => l.hostnames === undefined || l.hostnames.length > 0);
  if (listeners.length === 0)
    return fail("NoMatchingListenerHostname", "no listener hostname intersects the route's hostnames");
  return {
    parentRef: ref,
    accepted: { type: "Accepted", status: "True", reason: "Accepted", message: "route accepted" },
    listeners,
  };
}

function namespaceAllowed(
  p: ListenerPlan,
  gw: Gateway,
  routeNs: string,
  namespaceLabels: (ns: string) => Record<string, string> | undefined,
): boolean {
  const from = p.listener.allowedRoutes?.namespaces?.from ?? "Same";
  if (from === "All") return true;
  if (from === "Same") return routeNs === gw.metadata.namespace;
  const labels = namespaceLabels(routeNs);
  return labels !== undefined && selects(p.listener.allowedRoutes?.namespaces?.selector ?? {}, labels);
}

export function selects(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = e.key in labels;
    const inValues = has && (e.values ?? []).includes(labels[e.key]!);
    const ok =
      e.operator === "In"
        ? inValues
        : e.operator === "NotIn"
          ? !inValues
          : e.operator === "Exists"
            ? has
            : e.operator === "DoesNotExist"
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
}
