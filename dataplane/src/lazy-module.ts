/**
 * A dependency loaded on first use instead of at start-up.
 *
 * Every plugin is imported when the data plane starts, so a library only some configs use (the
 * AWS SDK for S3 stores, archiver for JMIX zips) would otherwise sit in every data plane's heap.
 * That is not only memory: each full garbage collection marks the whole live heap, and streaming
 * large bodies triggers them often (their chunks are external memory), so a heap twice the size
 * made the 1 MiB pass-through cost more CPU per MiB (bench/README.md, issue 18). A synchronous
 * require keeps the callers synchronous; Node 24 loads ESM-only packages and our own ESM modules
 * this way too (sharing the ESM cache with `import`).
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/**
 * `load()` returns the module, importing it the first time. A relative specifier is resolved from
 * `from` (the caller's `import.meta.url`).
 */
export function lazyModule<T>(specifier: string, from?: string): () => T {
  const load = from ? createRequire(from) : require;
  let loaded: T | undefined;
  return () => (loaded ??= load(specifier) as T);
}
