/**
 * The validating half of the webhook: an AdmissionReview for a Harmony resource in, allowed or
 * refused out, with the problems in spec paths (admission/validate.ts finds them). Synchronous and
 * cluster-free: it reads nothing from the API server, so every replica answers the same.
 */
import { isDeepStrictEqual } from "node:util";
import { API_VERSION, type HarmonyResource } from "../api/v1alpha1.js";
import { validateResource } from "../admission/validate.js";
import type { HarmonyNetwork } from "../api/network.js";
import type { AdmissionResponse } from "./types.js";

export interface ValidationRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  name?: string;
  namespace?: string;
  object?: HarmonyResource | HarmonyNetwork;
  oldObject?: HarmonyResource | HarmonyNetwork;
}

/** Refusals quote at most this much (the API server caps a status message anyway). */
const MAX_MESSAGE = 4096;

export function validationResponse(r: ValidationRequest): AdmissionResponse {
  const allow: AdmissionResponse = { uid: r.uid, allowed: true };
  const obj = r.object;
  if (!obj || (r.operation !== "CREATE" && r.operation !== "UPDATE") || obj.apiVersion !== API_VERSION) return allow;
  // An update that leaves the spec alone (labels, finalizers, the deletion in progress) is not
  // the place to object to a spec admitted before these checks existed.
  if (r.operation === "UPDATE" && isDeepStrictEqual(r.oldObject?.spec, obj.spec)) return allow;
  const v =
    obj.kind === "HarmonyNetwork"
      ? validateResource(obj)
      : validateResource({ ...obj, metadata: { ...obj.metadata, namespace: obj.metadata?.namespace ?? r.namespace } });
  const warnings = v.warnings.length ? { warnings: v.warnings.slice(0, 20) } : {};
  if (v.errors.length === 0) return { ...allow, ...warnings };
  let message = v.errors.join("; ");
  if (message.length > MAX_MESSAGE) message = message.slice(0, MAX_MESSAGE - 15) + " … (truncated)";
  return { uid: r.uid, allowed: false, status: { code: 422, reason: "Invalid", message }, ...warnings };
}
