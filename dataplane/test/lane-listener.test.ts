/**
 * The llhttp lane's listener (runtime/lane-listener.ts) in process: a listener that is prepared but
 * never binds (a port another process holds, a reload's discarded candidate) must leave no timer
 * behind. node:http's connections-check interval of the never-listening server it hands off to used
 * to start at prepare time and was only cleared when the lane's server closed, which one that never
 * listened does not.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHook } from "node:async_hooks";
import { createServer } from "node:net";
import { once } from "node:events";
import { prepareListener } from "../src/runtime/listeners.js";
import { createLogger } from "../src/observability/logger.js";

test("a lane listener that never binds leaves no interval running", async () => {
  const holder = createServer().listen(0, "127.0.0.1");
  await once(holder, "listening");
  const port = (holder.address() as { port: number }).port;
  const live = new Set<number>();
  let recording = true;
  const hook = createHook({
    init: (id, type) => void (recording && type === "Timeout" && live.add(id)),
    destroy: (id) => void live.delete(id),
  }).enable();
  try {
    const logger = createLogger("error");
    const fast = { serve: () => false, handedOff: () => {} };
    const spec = { address: "127.0.0.1", port, headersTimeoutMs: 1000, http1Server: "llhttp" as const };
    for (let i = 0; i < 10; i++) {
      const p = prepareListener(spec, () => {}, logger, "n", fast);
      await assert.rejects(p.bind(false), /EADDRINUSE/);
    }
    for (let i = 0; i < 5; i++) prepareListener(spec, () => {}, logger, "n", fast).discard();
    recording = false; // the waits below are the test's own timers
    // Timeouts cleared in this tick are destroyed on a later one.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(live.size, 0, `${live.size} timers left running`);
  } finally {
    hook.disable();
    holder.close();
  }
});
