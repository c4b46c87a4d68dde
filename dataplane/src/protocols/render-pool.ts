/**
 * Frame encoding off the event loop: a small worker-thread pool (piscina), as bcrypt has
 * (middleware/auth/bcrypt-pool.ts). Half the cores (at least one) encode, so a burst of rendered
 * requests costs CPU but does not stall other requests behind a PNG. The queue is bounded: beyond
 * it a rendering is refused with 503 rather than piling up frames in memory.
 */
import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import { HttpError, problemType } from "../pipeline/errors.js";
import { frameBytesOf, type Image, type ImageType } from "./pixel-render.js";

/** Frames waiting for a thread before further ones are refused. */
const MAX_QUEUED = 64;

let pool: Piscina | undefined;

function thePool(): Piscina {
  // Under tsx (tests, development) the worker is the .ts source beside this file.
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  pool ??= new Piscina({
    filename: new URL(`./render-worker${ext}`, import.meta.url).href,
    minThreads: 0,
    maxThreads: Math.max(1, Math.floor(availableParallelism() / 2)),
    maxQueue: MAX_QUEUED,
    // Idle threads go away, so a data plane without rendering traffic holds none.
    idleTimeout: 30_000,
  });
  return pool;
}

/** Frame `n` (1-based) of `img` as `type`; only that frame's pixels travel to the worker. */
export async function renderFrame(img: Image, n: number, type: ImageType): Promise<Buffer> {
  const pixels = frameBytesOf(img, n); // also refuses a frame past the last
  const p = thePool();
  if (p.queueSize >= MAX_QUEUED) throw busy();
  try {
    const out = (await p.run({ img: { ...img, frames: 1, pixels }, type })) as Uint8Array;
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    if (/queue is at limit/i.test((e as Error).message)) throw busy();
    throw e;
  }
}

const busy = () =>
  new HttpError(503, "too many images are waiting to be rendered; retry shortly", {
    type: problemType("render-busy"),
    headers: { "retry-after": "1" },
  });
