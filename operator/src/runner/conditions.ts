/**
 * metav1.Condition bookkeeping: a list keyed by type; lastTransitionTime moves only when the
 * status flips; reason, message and observedGeneration update in place. Messages are truncated
 * to the schema's limit.
 */
import type { Condition } from "../api/v1alpha1.js";

export type ConditionType = "Accepted" | "ResolvedRefs" | "Programmed" | "Ready" | "NetworkReachable";

export interface DesiredCondition {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

const MAX_MESSAGE = 32768;
const ORDER: ConditionType[] = ["Accepted", "ResolvedRefs", "Programmed", "Ready"];

/** Timestamps to the second, as the API server stores them (avoids spurious diffs). */
export const nowSeconds = (now = new Date()): string =>
  new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");

export function setConditions(
  existing: readonly Condition[] | undefined,
  desired: readonly DesiredCondition[],
  generation: number | undefined,
  now = new Date(),
): Condition[] {
  const byType = new Map((existing ?? []).map((c) => [c.type, c]));
  for (const d of desired) {
    const prev = byType.get(d.type);
    const message =
      d.message.length > MAX_MESSAGE ? d.message.slice(0, MAX_MESSAGE - 15) + " … (truncated)" : d.message;
    byType.set(d.type, {
      type: d.type,
      status: d.status,
      reason: d.reason,
      message,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: prev && prev.status === d.status ? prev.lastTransitionTime : nowSeconds(now),
    });
  }
  const rank = (t: string) => {
    const i = ORDER.indexOf(t as ConditionType);
    return i < 0 ? ORDER.length : i;
  };
  return [...byType.values()].sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}

/**
 * Equal for the purpose of "is a status write needed". Canonical JSON: the API server hands
 * objects back with their keys sorted, so key order must not count as a change.
 */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  return canonical(a ?? []) === canonical(b ?? []);
}

export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );
}

/**
 * Which conditions get an Event on a pipeline or an endpoint: one whose status flips, and a first
 * verdict that refuses the object (Accepted or ResolvedRefs False: the user has something to fix).
 * Any other first value is in the status alone: an Event for each condition of every new pipeline
 * (four each) was more API writes than the status writes themselves while 10,000 of them arrived
 * (bench/README.md, operator-scale), and said nothing `kubectl get` does not. A gateway, one of
 * which takes thousands of them, keeps an Event for every first value too (`transitions`).
 */
export function eventTransitions(before: readonly Condition[] | undefined, after: readonly Condition[]): Condition[] {
  const prev = new Map((before ?? []).map((c) => [c.type, c.status]));
  return after.filter((c) => {
    const was = prev.get(c.type);
    if (was === undefined) return c.status === "False" && (c.type === "Accepted" || c.type === "ResolvedRefs");
    return was !== c.status;
  });
}

/** Which conditions flipped status (a first value counts). */
export function transitions(before: readonly Condition[] | undefined, after: readonly Condition[]): Condition[] {
  const prev = new Map((before ?? []).map((c) => [c.type, c.status]));
  return after.filter((c) => prev.get(c.type) !== c.status);
}
