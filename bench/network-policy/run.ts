/**
 * What network policy evaluation adds to a request on a harmony_network listener at 10,000 rules.
 * One data plane serves the same echo endpoint on two inter-gateway listeners of two networks
 * whose directories differ only in their policies (none / 10,000); one mTLS keep-alive client
 * with the caller's identity alternates between them. Then the evaluation alone, in-process: the
 * index by destination against a linear scan of the same rules.
 *
 *   node --import tsx bench/network-policy/run.ts [--requests 20000] [--rules 10000]
 */
import { Agent, request } from "node:https";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort, startDataplane, tempDir } from "../../dataplane/test/helpers.js";
import { createCa, issueLeaf, spiffe } from "../../test/network-pki.js";
import { parseDirectory } from "../../dataplane/src/network/directory.js";
import { compilePolicy, evaluate } from "../../dataplane/src/network/policy.js";
import { parseSpiffe } from "../../dataplane/src/network/identity.js";
import { httpOperation } from "../../dataplane/src/network/operations.js";

const { values: a } = parseArgs({
  options: { requests: { type: "string", default: "20000" }, rules: { type: "string", default: "10000" } },
});
const N = Number(a.requests);
const RULES = Number(a.rules);
const DOMAINS = { none: "none.example", many: "many.example" };

/** Rules that never match the measured request but are the realistic mix; the last one allows it. */
function policies(domain: string): unknown[] {
  const out: unknown[] = [];
  const ops = [
    [{ protocol: "fhir", interactions: ["create", "update"], resource_types: ["Patient"] }],
    [{ protocol: "dicom", commands: ["C-STORE"] }],
    [{ protocol: "http", methods: ["DELETE"], paths: ["/admin/*"] }],
  ];
  for (let i = 0; i < RULES - 1; i++) {
    // A few rules name no destination (they apply everywhere), the rest one endpoint each.
    const anywhere = i % 500 === 0;
    out.push({
      name: `rule-${i}`,
      action: i % 2 ? "allow" : "deny",
      source: { orgs: [anywhere ? "org-q" : `org-${i % 97}`] },
      ...(anywhere ? {} : { destination: { endpoints: [`harmony://${domain}/org-${i % 89}/ep-${i}`] } }),
      operations: ops[i % ops.length],
    });
  }
  out.push({
    name: "a-may-read-echo",
    action: "allow",
    source: { orgs: ["org-a"] },
    destination: { endpoints: [`harmony://${domain}/org-b/echo`] },
    operations: [{ protocol: "http", methods: ["GET"] }],
  });
  return out;
}

const ca = createCa("bench network CA");
const server = issueLeaf(
  ca,
  Object.values(DOMAINS).map((d) => spiffe(d, "org-b", "gw-b")),
);
const client = issueLeaf(
  ca,
  Object.values(DOMAINS).map((d) => spiffe(d, "org-a", "gw-a")),
);
const dir = tempDir("harmony-bench-netpol-");
writeFileSync(join(dir, "tls.crt"), server.certPem);
writeFileSync(join(dir, "tls.key"), server.keyPem);
writeFileSync(join(dir, "ca.crt"), ca.certPem);
const ports = { none: await freePort(), many: await freePort() };
let toml = `[proxy]
id = "bench-netpol"
[logging]
log_level = "info"
access_log = false
[management]
enabled = true
network = "management"
[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0
[backends.echo]
service = "echo"
`;
const directories: Record<string, string> = {};
for (const [name, domain] of Object.entries(DOMAINS) as [keyof typeof DOMAINS, string][]) {
  const doc = {
    version: 1,
    network: name,
    domain,
    // Members, but of different groups: without a rule org A would be denied (default-deny).
    groups: [{ orgs: ["org-a"] }, { orgs: ["org-b"] }],
    entries: [
      {
        uri: `harmony://${domain}/org-b/echo`,
        org: "org-b",
        endpoint: "echo",
        protocol: "http",
        address: "127.0.0.1",
        port: ports[name],
        path_prefix: "/echo",
        identity: spiffe(domain, "org-b", "gw-b"),
      },
    ],
    // So the "none" network keeps only the one rule that allows the measured request.
    policies: name === "none" ? policies(domain).slice(-1) : policies(domain),
  };
  directories[name] = JSON.stringify(doc);
  writeFileSync(join(dir, `${name}.json`), directories[name]);
  toml += `
[harmony_networks.${name}]
domain = "${domain}"
org = "org-b"
cert_path = "tls.crt"
key_path = "tls.key"
trust_bundle_path = "ca.crt"
directory_path = "${name}.json"
[network.${name}]
harmony_network = "${name}"
[network.${name}.http]
bind_address = "127.0.0.1"
bind_port = ${ports[name]}
[pipelines.${name}]
networks = ["${name}"]
endpoints = ["${name}_in"]
backends = ["echo"]
[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/echo" }
`;
}
writeFileSync(join(dir, "harmony.toml"), toml);
const dp = await startDataplane(join(dir, "harmony.toml"));
const agent = new Agent({
  keepAlive: true,
  maxSockets: 1,
  ca: ca.certPem,
  cert: client.certPem,
  key: client.keyPem,
  checkServerIdentity: () => undefined,
});

function once(port: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const r = request({ host: "127.0.0.1", port, path: "/echo/x", agent }, (res) => {
      res.resume();
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`${port}: ${res.statusCode}`));
        else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
      });
    });
    r.on("error", reject);
    r.end();
  });
}

const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) * p)]!;
const fmt = (ms: number) => `${ms.toFixed(3)} ms`;
try {
  for (let i = 0; i < 2000; i++) await once(i % 2 ? ports.none : ports.many); // warm up
  const none: number[] = [];
  const many: number[] = [];
  for (let i = 0; i < N; i++) {
    if (i % 2) none.push(await once(ports.none));
    else many.push(await once(ports.many));
  }
  process.stdout.write(`end to end, ${N / 2} requests each (mTLS keep-alive, one client):\n`);
  process.stdout.write(`| quantile | 1 rule | ${RULES} rules | added |\n|---|---|---|---|\n`);
  for (const p of [0.5, 0.9, 0.99])
    process.stdout.write(
      `| p${p * 100} | ${fmt(q(none, p))} | ${fmt(q(many, p))} | ${fmt(q(many, p) - q(none, p))} |\n`,
    );
} finally {
  await dp.stop();
  agent.destroy();
}

// In-process: the index against a linear scan of the same rules, first match wins in both.
const d = parseDirectory(directories.many!, { network: "many", domain: DOMAINS.many });
const policy = compilePolicy(d.doc.policies ?? []);
const peer = parseSpiffe(spiffe(DOMAINS.many, "org-a", "gw-a"))!;
const dest = `harmony://${DOMAINS.many}/org-b/echo`;
const op = httpOperation("http", "GET", "/x");
const linear = compilePolicy([]);
linear.anyDestination.push(...[...policy.byDestination.values()].flat(), ...policy.anyDestination);
linear.anyDestination.sort((x, y) => x.index - y.index);
for (const [label, p] of [
  ["indexed", policy],
  ["linear scan", linear],
] as const) {
  const M = label === "indexed" ? 200_000 : 2_000;
  let rule = "";
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < M; i++) rule = evaluate(p, d, peer, dest, "org-b", op).rule;
  const ns = Number(process.hrtime.bigint() - t0) / M;
  process.stdout.write(`evaluate(), ${label}, ${RULES} rules: ${ns.toFixed(0)} ns per request (decided by ${rule})\n`);
}
