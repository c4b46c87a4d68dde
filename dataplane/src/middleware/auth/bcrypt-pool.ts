/**
 * bcrypt verification off the event loop: a small worker-thread pool (piscina) shared by every
 * basic_auth instance in the process. Half the cores (at least one) verify, so a flood of wrong
 * passwords costs CPU but never stalls other pipelines' requests behind a hash. The queue is
 * bounded: beyond it a verification is refused with 503 rather than piling up memory and latency.
 */
import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import { HttpError, problemType } from "../../pipeline/errors.js";

/** Verifications waiting for a thread before further ones are refused. */
export const MAX_QUEUED = 128;

let pool: Piscina | undefined;

function thePool(): Piscina {
  // Under tsx (tests, development) the worker is the .ts source beside this file.
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  pool ??= new Piscina({
    filename: new URL(`./bcrypt-worker${ext}`, import.meta.url).href,
    minThreads: 0,
    maxThreads: Math.max(1, Math.floor(availableParallelism() / 2)),
    maxQueue: MAX_QUEUED,
    // Idle threads go away, so a data plane without basic_auth traffic holds none.
    idleTimeout: 30_000,
  });
  return pool;
}

/** True when `password` matches the bcrypt `hash`; 503 when the pool's queue is full. */
export async function bcryptVerify(password: string, hash: string): Promise<boolean> {
  const p = thePool();
  if (p.queueSize >= MAX_QUEUED) throw busy();
  try {
    return (await p.run({ password, hash })) as boolean;
  } catch (e) {
    if (/queue is at limit/i.test((e as Error).message)) throw busy();
    throw e;
  }
}

const busy = () =>
  new HttpError(503, "too many credential checks are waiting; retry shortly", {
    type: problemType("auth-busy"),
    headers: { "retry-after": "1" },
  });
