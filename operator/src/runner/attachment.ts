/**
 * Whether a gateway takes a pipeline that references it, and if not, why — in words a user can
 * act on. The gateway reconcile renders the pipelines that attach; the pipeline reconcile reports
 * the ones that do not, so both read the same rule from here.
 */
import type { HarmonyGateway, HarmonyPipeline } from "../api/v1alpha1.js";
import type { DesiredCondition } from "./conditions.js";

export type Attachment =
  { attached: true } | { attached: false; reason: "GatewayNotFound" | "NotAllowedByGateway"; message: string };

export function attachment(gw: HarmonyGateway, p: HarmonyPipeline): Attachment {
  const gwNs = gw.metadata.namespace;
  const gwName = `HarmonyGateway ${gwNs}/${gw.metadata.name}`;
  const refNs = p.spec.gatewayRef.namespace ?? p.metadata.namespace;
  if (p.spec.gatewayRef.name !== gw.metadata.name || refNs !== gwNs)
    return { attached: false, reason: "GatewayNotFound", message: `spec.gatewayRef does not name ${gwName}` };
  if (gw.metadata.deletionTimestamp)
    return { attached: false, reason: "GatewayNotFound", message: `${gwName} is being deleted` };
  const allowed = new Set([gwNs, ...(gw.spec.allowedNamespaces ?? [])]);
  if (!allowed.has(p.metadata.namespace))
    return {
      attached: false,
      reason: "NotAllowedByGateway",
      message: `${gwName} does not allow pipelines from namespace ${p.metadata.namespace} (its spec.allowedNamespaces)`,
    };
  const sel = Object.entries(gw.spec.pipelineSelector?.matchLabels ?? {});
  const mismatch = sel.filter(([k, v]) => p.metadata.labels?.[k] !== v);
  if (mismatch.length)
    return {
      attached: false,
      reason: "NotAllowedByGateway",
      message: `${gwName} selects pipelines labelled ${sel.map(([k, v]) => `${k}=${v}`).join(",")} (its spec.pipelineSelector); this pipeline does not match on ${mismatch.map(([k]) => k).join(",")}`,
    };
  return { attached: true };
}

/** Every condition a detached pipeline shows: one reason throughout, nothing left from its last gateway. */
export function detachedConditions(a: Extract<Attachment, { attached: false }>): DesiredCondition[] {
  return [
    { type: "Accepted", status: "False", reason: a.reason, message: a.message },
    // References are only resolved for a gateway that renders the pipeline.
    {
      type: "ResolvedRefs",
      status: "Unknown",
      reason: a.reason,
      message: "not checked: no gateway takes this pipeline",
    },
    { type: "Programmed", status: "False", reason: a.reason, message: "not in any gateway's config" },
    { type: "Ready", status: "False", reason: a.reason, message: "not served" },
  ];
}
