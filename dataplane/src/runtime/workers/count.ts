/**
 * How many worker processes a config asks for (proxy.workers), read before anything starts: the
 * primary must know it before it forks. A config that does not load, or a value the schema refuses,
 * counts as one worker, so the single-process start-up reports the problems as it always has.
 */
import { availableParallelism } from "node:os";
import { loadConfig } from "../../config/load.js";

export interface GroupSettings {
  workers: number;
  shutdownTimeoutMs: number;
}

export function groupSettings(configFile: string): GroupSettings {
  let proxy: Record<string, unknown> = {};
  try {
    const raw = loadConfig(configFile).raw.proxy;
    if (typeof raw === "object" && raw !== null) proxy = raw as Record<string, unknown>;
  } catch {
    // Reported by the start-up that follows.
  }
  return { workers: workerCount(proxy.workers), shutdownTimeoutMs: timeout(proxy.shutdown_timeout_ms) };
}

/** "auto": one per CPU this process may run on (its affinity mask; a cgroup CPU quota is not seen). */
export function workerCount(v: unknown): number {
  if (v === "auto") return Math.max(1, availableParallelism());
  return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 256 ? v : 1;
}

const timeout = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : 30_000);
