/**
 * What a `policies` middleware with 1,000 rules adds to a request: the same echo pipeline with and
 * without it, one data plane, requests alternating between the two over keep-alive connections.
 * The rules are the realistic worst case: every one is evaluated (the documented semantics), a
 * mix of CIDR, path, header, method, query and user-agent rules that do not match, plus allow_all.
 *
 *   node --import tsx bench/policy/run.ts [--requests 20000] [--rules 1000]
 */
import { Agent, request } from "node:http";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { baseConfig, startDataplane, writeTree } from "../../dataplane/test/helpers.js";

const { values: a } = parseArgs({
  options: { requests: { type: "string", default: "20000" }, rules: { type: "string", default: "1000" } },
});
const N = Number(a.requests);
const RULES = Number(a.rules);

const kinds = [
  (i: number) => `{ type = "ip_deny", ip_addresses = ["10.${i % 250}.${(i >> 8) % 250}.0/24"] }`,
  (i: number) => `{ type = "path", mode = "deny", paths = ["/blocked-${i}/{*rest}"] }`,
  (i: number) => `{ type = "header", mode = "deny", headers = [{ name = "x-block-${i}", match_type = "exists" }] }`,
  (i: number) => `{ type = "method", mode = "deny", methods = ["PURGE${i}"] }`,
  (i: number) =>
    `{ type = "query_parameter", mode = "deny", parameters = [{ name = "q${i}", match_type = "exact", value = "x" }] }`,
  (i: number) => `{ type = "user_agent", mode = "deny", patterns = ["/badbot-${i}/i"] }`,
];
const rules = Array.from({ length: RULES - 1 }, (_, i) => kinds[i % kinds.length]!(i));
rules.push(`{ type = "allow_all" }`);

const pipeline = (name: string, mw: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
${mw ? `middleware = ["${name}_mw"]` : ""}
backends = ["echo"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }
`;
const dir = writeTree({
  "config.toml": baseConfig(
    pipeline("plain", "") +
      pipeline("policy", "x") +
      `
[middleware.policy_mw]
type = "policies"
[[middleware.policy_mw.options.policies]]
rules = [
${rules.join(",\n")}
]

[backends.echo]
service = "echo"
`,
  ).replace('log_level = "info"', 'log_level = "info"\naccess_log = false'),
});
const dp = await startDataplane(join(dir, "config.toml"));
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function once(path: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const r = request({ host: "127.0.0.1", port: dp.ports.default, path, agent }, (res) => {
      res.resume();
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`${path}: ${res.statusCode}`));
        else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
      });
    });
    r.on("error", reject);
    r.end();
  });
}

try {
  for (let i = 0; i < 2000; i++) await once(i % 2 ? "/plain/x" : "/policy/x"); // warm up
  const plain: number[] = [];
  const policy: number[] = [];
  for (let i = 0; i < N; i++) {
    if (i % 2) plain.push(await once("/plain/x?a=1"));
    else policy.push(await once("/policy/x?a=1"));
  }
  const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) * p)]!;
  const row = (p: number) => ({
    p,
    plain_ms: Number(q(plain, p).toFixed(3)),
    policy_ms: Number(q(policy, p).toFixed(3)),
    added_ms: Number((q(policy, p) - q(plain, p)).toFixed(3)),
  });
  const out = { rules: RULES, requests_each: N / 2, quantiles: [row(0.5), row(0.9), row(0.99)] };
  for (const r of out.quantiles)
    process.stdout.write(
      `p${r.p * 100}: plain ${r.plain_ms} ms, with ${RULES} rules ${r.policy_ms} ms, added ${r.added_ms} ms\n`,
    );
  process.stdout.write(JSON.stringify(out) + "\n");
} finally {
  agent.destroy();
  await dp.stop();
}
