/**
 * What a wrong-password flood against a `basic_auth` pipeline does to an unrelated pipeline: one
 * data plane, an echo pipeline `/free` without auth and `/auth` with basic_auth (a cost-10 bcrypt
 * user). A single keep-alive client measures `/free` alone, then again while `--clients` clients
 * send wrong passwords to `/auth` as fast as they are answered. Loopback only; the flood stops
 * when the measurement does.
 *
 *   node --import tsx bench/basic-auth-flood/run.ts [--requests 500] [--clients 32] [--failure-limit 0]
 *
 * `--failure-limit 0` (the default here) turns the per-client backoff off, so every flood request
 * costs a bcrypt verification: this measures the worker pool, not the backoff. `--legacy` leaves
 * the option out, for running against a build from before it existed.
 */
import { Agent, request } from "node:http";
import { join } from "node:path";
import { parseArgs } from "node:util";
import bcrypt from "bcryptjs";
import { baseConfig, startDataplane, writeTree } from "../../dataplane/test/helpers.js";

const { values: a } = parseArgs({
  options: {
    requests: { type: "string", default: "500" },
    clients: { type: "string", default: "32" },
    "failure-limit": { type: "string", default: "0" },
    legacy: { type: "boolean", default: false },
  },
});
const N = Number(a.requests);
const CLIENTS = Number(a.clients);

const pipeline = (name: string, mw: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
${mw ? `middleware = ["${mw}"]` : ""}
backends = ["echo"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }
`;
const hash = bcrypt.hashSync("right", 10);
const limit = a.legacy ? "" : `, failure_limit = ${Number(a["failure-limit"])}`;
const dir = writeTree({
  "config.toml": baseConfig(
    pipeline("free", "") +
      pipeline("auth", "auth") +
      `
[middleware.auth]
type = "basic_auth"
options = { users = { alice = "${hash}" }${limit} }

[backends.echo]
service = "echo"
`,
  ).replace('log_level = "info"', 'log_level = "info"\naccess_log = false'),
});
const dp = await startDataplane(join(dir, "config.toml"));
const wrong = "Basic " + Buffer.from("alice:wrong").toString("base64");

function once(agent: Agent, path: string, headers: Record<string, string> = {}): Promise<[number, number]> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const r = request({ host: "127.0.0.1", port: dp.ports.default, path, agent, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve([res.statusCode!, Number(process.hrtime.bigint() - t0) / 1e6]));
    });
    r.on("error", reject);
    r.end();
  });
}

async function measure(): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const [status, ms] = await once(agent, "/free/x");
      if (status !== 200) throw new Error(`/free answered ${status}`);
      times.push(ms);
    }
  } finally {
    agent.destroy();
  }
  return times;
}

const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) * p)]!;
const summary = (xs: number[]) => ({
  p50_ms: Number(q(xs, 0.5).toFixed(2)),
  p99_ms: Number(q(xs, 0.99).toFixed(2)),
  max_ms: Number(Math.max(...xs).toFixed(2)),
});

try {
  const warm = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 200; i++) await once(warm, "/free/x");
  warm.destroy();
  const quiet = await measure();

  let stop = false;
  const statuses: Record<number, number> = {};
  const floodAgent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const flooders = Array.from({ length: CLIENTS }, async () => {
    while (!stop) {
      const [status] = await once(floodAgent, "/auth/x", { authorization: wrong });
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  });
  // Let the flood fill the queue before measuring.
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = Date.now();
  const flooded = await measure();
  const seconds = (Date.now() - t0) / 1000;
  stop = true;
  await Promise.all(flooders);
  floodAgent.destroy();

  const out = {
    clients: CLIENTS,
    requests: N,
    failure_limit: a.legacy ? "n/a" : Number(a["failure-limit"]),
    quiet: summary(quiet),
    flooded: summary(flooded),
    flood_answers: statuses,
    flood_answers_per_s_during_measurement: Math.round(Object.values(statuses).reduce((x, y) => x + y, 0) / seconds),
  };
  process.stdout.write(
    `/free alone:        p50 ${out.quiet.p50_ms} ms, p99 ${out.quiet.p99_ms} ms, max ${out.quiet.max_ms} ms\n` +
      `/free under flood:  p50 ${out.flooded.p50_ms} ms, p99 ${out.flooded.p99_ms} ms, max ${out.flooded.max_ms} ms\n`,
  );
  process.stdout.write(JSON.stringify(out) + "\n");
} finally {
  await dp.stop();
}
