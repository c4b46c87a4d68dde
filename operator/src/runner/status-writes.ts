/**
 * How a gateway reconcile writes its pipelines' statuses: a few at a time, and which of them may be
 * dropped when a newer change of the gateway is already waiting (gateway-reconciler.ts says why).
 */
import type { DesiredCondition } from "./conditions.js";

/** The object already shows every desired condition with this status and reason, for this generation. */
export function verdictsHold(
  current: readonly { type: string; status: string; reason: string; observedGeneration?: number }[] | undefined,
  desired: readonly DesiredCondition[],
  generation: number | undefined,
): boolean {
  return desired.every((d) =>
    current?.some(
      (c) => c.type === d.type && c.status === d.status && c.reason === d.reason && c.observedGeneration === generation,
    ),
  );
}

/** Pipeline status writes in flight at once for one gateway. */
export const STATUS_WRITERS = 8;

/** Runs the tasks, `width` at a time, starting no more once `stop()` says so. */
export async function inParallel(tasks: (() => Promise<void>)[], width: number, stop?: () => boolean): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < tasks.length && !stop?.()) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(width, tasks.length) }, lane));
}
