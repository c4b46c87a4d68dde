/**
 * How a group answers as one: its readiness and a reload's result from each worker's. Pure
 * functions of what the workers reported, so the rules are in one place.
 */
import type { Readiness, ReloadResult } from "../gateway.js";
import type { WorkerState } from "./ipc.js";

/** One slot's view: its state, or why there is none (restarting, not answering). */
export type SlotReport = { slot: number; state: WorkerState } | { slot: number; missing: string };

/**
 * Ready when every worker is ready on the same config. A worker that is restarting, not ready, or
 * on another config makes the group not ready, with that worker named: the hash /readyz reports is
 * what the whole pod serves, and the operator relies on it.
 */
export function groupReadiness(reports: SlotReport[], stopping: boolean): Readiness {
  if (stopping) return { ready: false, reason: "shutting down" };
  const hashes = new Set<string>();
  for (const r of reports) {
    if ("missing" in r) return { ready: false, reason: `worker ${r.slot + 1}: ${r.missing}` };
    const rd = r.state.readiness;
    if (!rd.ready) return { ...rd, reason: `worker ${r.slot + 1}: ${rd.reason ?? "not ready"}` };
    if (rd.configHash) hashes.add(rd.configHash);
  }
  if (hashes.size > 1)
    return { ready: false, reason: `workers serve ${hashes.size} different configs (a reload is under way)` };
  const [configHash] = hashes;
  return { ready: true, ...(configHash ? { configHash } : {}) };
}

export interface WorkerReload {
  slot: number;
  pid?: number;
  result?: ReloadResult;
  error?: string;
}

/** The group's reload result: ok only when every worker took the config; the first refusal explains. */
export function groupReload(trigger: string, at: Date, each: WorkerReload[]): ReloadResult & { workers: object[] } {
  const workers = each.map((w) => ({
    worker: w.slot + 1,
    ...(w.pid ? { pid: w.pid } : {}),
    ok: w.result?.ok ?? false,
    ...(w.result?.hash ? { hash: w.result.hash } : {}),
    ...(w.error || w.result?.error ? { error: w.error ?? w.result?.error } : {}),
  }));
  const failed = each.find((w) => !w.result?.ok);
  const first = each.find((w) => w.result)?.result;
  if (!failed && first) {
    return { ...first, trigger, changed: each.some((w) => w.result?.changed), workers };
  }
  return {
    ok: false,
    trigger,
    at: at.toISOString(),
    ...(failed?.result?.problems ? { problems: failed.result.problems } : {}),
    error: failed
      ? `worker ${failed.slot + 1}: ${failed.error ?? failed.result?.error ?? "reload failed"}`
      : "no worker is running",
    ...(failed?.result?.source ? { source: failed.result.source } : {}),
    workers,
  };
}
