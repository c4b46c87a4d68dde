/**
 * What in an HTTPRoute the data plane can serve, and what its references resolve to (pure): the
 * route's ResolvedRefs condition (backends, ExtensionRef pipelines) and, for a filter or match this
 * implementation does not serve, an Accepted=False/UnsupportedValue.
 */
import type { HTTPRoute, HTTPRouteFilter } from "../api/gateway-api.js";
import type { HarmonyPipeline } from "../api/v1alpha1.js";
import { GROUP as HARMONY_GROUP } from "../api/v1alpha1.js";
import { firstProblem, resolveBackend, type BackendLookups } from "./backends.js";
import type { GwCondition } from "./listeners.js";

export const SUPPORTED_FILTERS = new Set([
  "RequestHeaderModifier",
  "ResponseHeaderModifier",
  "RequestRedirect",
  "ExtensionRef",
]);

export type PipelineLookup = (namespace: string, name: string) => HarmonyPipeline | undefined;

/** An ExtensionRef naming a HarmonyPipeline in the route's namespace, or why it cannot be used. */
export function extensionPipeline(
  route: HTTPRoute,
  f: HTTPRouteFilter,
  pipelines: PipelineLookup,
): HarmonyPipeline | { reason: string; message: string } {
  const ref = f.extensionRef;
  if (!ref || ref.group !== HARMONY_GROUP || ref.kind !== "HarmonyPipeline")
    return {
      reason: "InvalidKind",
      message: `ExtensionRef ${ref?.group}/${ref?.kind}: only HarmonyPipeline is supported`,
    };
  const p = pipelines(route.metadata.namespace ?? "", ref.name);
  return (
    p ?? { reason: "BackendNotFound", message: `HarmonyPipeline ${route.metadata.namespace}/${ref.name} not found` }
  );
}

/** Accepted=False when the route asks for something not served; undefined when all is servable. */
export function unsupported(route: HTTPRoute): GwCondition | undefined {
  for (const [i, rule] of (route.spec.rules ?? []).entries()) {
    for (const f of [...(rule.filters ?? []), ...(rule.backendRefs ?? []).flatMap((b) => b.filters ?? [])]) {
      if (!SUPPORTED_FILTERS.has(f.type))
        return {
          type: "Accepted",
          status: "False",
          reason: "UnsupportedValue",
          message: `spec.rules[${i}]: filter ${f.type} is not supported`,
        };
    }
    if ((rule.backendRefs ?? []).some((b) => b.filters?.length))
      return {
        type: "Accepted",
        status: "False",
        reason: "UnsupportedValue",
        message: `spec.rules[${i}]: backendRef filters are not supported`,
      };
    for (const m of rule.matches ?? []) {
      if (m.path?.type === "RegularExpression")
        return {
          type: "Accepted",
          status: "False",
          reason: "UnsupportedValue",
          message: `spec.rules[${i}]: RegularExpression paths are not supported`,
        };
    }
  }
  return undefined;
}

export function resolvedRefs(route: HTTPRoute, backends: BackendLookups, pipelines: PipelineLookup): GwCondition {
  for (const rule of route.spec.rules ?? []) {
    const problem = firstProblem((rule.backendRefs ?? []).map((b) => resolveBackend(route, b, backends)));
    if (problem) return { type: "ResolvedRefs", status: "False", ...problem };
    for (const f of rule.filters ?? []) {
      if (f.type !== "ExtensionRef") continue;
      const p = extensionPipeline(route, f, pipelines);
      if ("reason" in p) return { type: "ResolvedRefs", status: "False", ...p };
    }
  }
  return { type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "all references resolved" };
}
