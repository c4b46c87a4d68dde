/**
 * Gateway API status bookkeeping: conditions merged by type (others' conditions are kept, as
 * GatewayPreserveForeignConditions asks), lastTransitionTime moving only on a status flip, and
 * every condition carrying the generation it describes.
 */
import type { Condition } from "../api/gateway-api.js";
import { nowSeconds } from "../runner/conditions.js";
import type { GwCondition } from "./listeners.js";

export function mergeConditions(
  existing: readonly Condition[] | undefined,
  desired: readonly GwCondition[],
  generation: number | undefined,
): Condition[] {
  const out = [...(existing ?? [])];
  for (const d of desired) {
    const i = out.findIndex((c) => c.type === d.type);
    const prev = i >= 0 ? out[i] : undefined;
    const c: Condition = {
      type: d.type,
      status: d.status,
      reason: d.reason,
      message: d.message.slice(0, 32000),
      observedGeneration: generation ?? 0,
      lastTransitionTime:
        prev && prev.status === d.status && prev.lastTransitionTime ? prev.lastTransitionTime : nowSeconds(),
    };
    if (i >= 0) out[i] = c;
    else out.push(c);
  }
  return out;
}
