/**
 * A steady HTTP load for the real-node tests: `concurrency` workers, each sending GETs one after
 * another on a shared keep-alive pool (as a real client or proxy does, so connections stay pinned
 * to a pod across endpoint changes), until stop(). Every outcome that is not a 2xx counts as a
 * failure, with what it was: a status, or the socket error's code.
 */
import { Agent, request } from "node:http";

export interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  /** The first few failures, "status 502" or "ECONNREFUSED", with the time since start. */
  failures: string[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  seconds: number;
}

export interface Load {
  /** Requests answered so far (for waiting until the load runs). */
  answered(): number;
  stop(): Promise<LoadReport>;
}

/** No request may hang a test: one that takes this long is a failure (never expected near it). */
const REQUEST_TIMEOUT_MS = 15_000;

export function startLoad(url: string, concurrency = 8): Load {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const t0 = performance.now();
  const latencies: number[] = [];
  const failures: string[] = [];
  let failed = 0;
  let running = true;

  const once = () =>
    new Promise<void>((resolve) => {
      const start = performance.now();
      const fail = (what: string) => {
        failed++;
        if (failures.length < 20) failures.push(`${((performance.now() - t0) / 1000).toFixed(2)} s: ${what}`);
        resolve();
      };
      const req = request(url, { agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        res.resume();
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            latencies.push(performance.now() - start);
            resolve();
          } else fail(`status ${status}`);
        });
        res.on("error", (e: NodeJS.ErrnoException) => fail(`response ${e.code ?? e.message}`));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
      req.end();
    });
  const workers = Array.from({ length: concurrency }, async () => {
    while (running) await once();
  });

  return {
    answered: () => latencies.length + failed,
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      const sorted = [...latencies].sort((a, b) => a - b);
      const q = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
      return {
        sent: latencies.length + failed,
        ok: latencies.length,
        failed,
        failures,
        p50Ms: q(50),
        p99Ms: q(99),
        maxMs: sorted.at(-1) ?? NaN,
        seconds: (performance.now() - t0) / 1000,
      };
    },
  };
}

export const formatLoad = (r: LoadReport) =>
  `${r.sent} requests in ${r.seconds.toFixed(1)} s, ${r.failed} failed; latency p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms`;
