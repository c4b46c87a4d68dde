/**
 * The translator: CRs in, data-plane config out, validated by the data plane's own checker; and
 * the render served by the real data-plane binary from a kubelet-style `..data` mount.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import TOML from "@iarna/toml";
import { render, type RenderResult } from "../src/translator/render.js";
import { RenderCache } from "../src/translator/render-cache.js";
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline } from "../src/api/v1alpha1.js";
import { freePort, http, startDataplane, startUpstream, tempDir } from "../../dataplane/test/helpers.js";

const gateway = (ports: { web: number; mgmt: number } = { web: 8080, mgmt: 9090 }): HarmonyGateway => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyGateway",
  metadata: { name: "gw", namespace: "ns", generation: 1 },
  spec: { networks: [{ name: "web", port: ports.web, bindAddress: "127.0.0.1" }], management: { port: ports.mgmt } },
});

const endpoint = (name: string, pathPrefix: string): HarmonyEndpoint => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyEndpoint",
  metadata: { name, namespace: "ns" },
  spec: { service: "http", pathPrefix },
});

const pipeline = (name: string, spec: Partial<HarmonyPipeline["spec"]>): HarmonyPipeline => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyPipeline",
  metadata: { name, namespace: "ns", generation: 3, creationTimestamp: "2026-11-28T01:00:00Z" },
  spec: {
    gatewayRef: { name: "gw" },
    endpoints: [{ name: "api" }],
    backends: [{ service: "http", url: "http://127.0.0.1:1" }],
    ...spec,
  },
});

const endpoints = new Map([
  ["ns/api", endpoint("api", "/api")],
  ["ns/other", endpoint("other", "/other")],
]);
const lookup = (ns: string, n: string) => endpoints.get(`${ns}/${n}`);
const noSecrets = () => undefined;
const outcome = (r: RenderResult, name: string) => r.pipelines.find((p) => p.name === name)!;

test("valid pipelines render; each broken one is reported on itself and left out", () => {
  const r = render(
    gateway(),
    [
      pipeline("good", {}),
      pipeline("bad-type", { endpoints: [{ name: "other" }], middleware: [{ name: "m", type: "carrier_pigeon" }] }),
      pipeline("no-endpoint", { endpoints: [{ name: "missing" }] }),
      {
        ...pipeline("clash", { middleware: [{ name: "p", type: "passthru" }] }),
        metadata: { name: "clash", namespace: "ns", creationTimestamp: "2026-11-28T02:00:00Z" },
      },
      pipeline("bad-option", {
        endpoints: [{ name: "other" }],
        backends: [{ service: "http", url: "http://x", options: { retries: "lots" } }],
      }),
      pipeline("bad-network", { networks: ["nowhere"] }),
    ],
    lookup,
    noSecrets,
  );
  assert.deepEqual(r.gatewayProblems, []);
  assert.equal(outcome(r, "good").programmed, true);
  assert.deepEqual(Object.keys(r.files).sort(), ["config.toml", "pipeline.ns.good.toml"]);

  const badType = outcome(r, "bad-type");
  assert.equal(badType.programmed, false);
  assert.equal(badType.failure?.reason, "UnsupportedValue");
  assert.match(badType.failure.message, /spec\.middleware\[0\]\.type: unknown middleware type "carrier_pigeon"/);

  assert.deepEqual(outcome(r, "no-endpoint").failure, {
    condition: "ResolvedRefs",
    reason: "EndpointNotFound",
    message: "spec.endpoints[0]: HarmonyEndpoint ns/missing not found",
  });
  // "clash" sorts (and loads) before "good", but "good" is older, so "good" keeps the route.
  assert.equal(outcome(r, "clash").failure?.reason, "RouteConflict");
  assert.match(outcome(r, "clash").failure!.message, /route claimed by older pipeline ns\/good/);
  assert.equal(outcome(r, "bad-option").failure?.reason, "InvalidOptions");
  assert.match(outcome(r, "bad-option").failure!.message, /options\.retries: must be integer/);
  assert.equal(outcome(r, "bad-network").failure?.reason, "UnknownNetwork");

  // What was rendered parses as the data plane's TOML and has the expected shape.
  const main = TOML.parse(r.files["config.toml"]!) as { proxy: { id: string }; network: Record<string, unknown> };
  assert.equal(main.proxy.id, "ns/gw");
  assert.deepEqual(Object.keys(main.network).sort(), ["management", "web"]);
  const p = TOML.parse(r.files["pipeline.ns.good.toml"]!) as { pipelines: Record<string, { networks: string[] }> };
  assert.deepEqual(p.pipelines["ns.good"]?.networks, ["web"]);
  assert.match(r.hash, /^[0-9a-f]{64}$/);
  assert.match(r.files["config.toml"]!, /^bind_port = 9090$/m, "plain integers for people reading the ConfigMap");
});

test("the render is deterministic", () => {
  const ps = [pipeline("a", {}), pipeline("b", { endpoints: [{ name: "other" }] })];
  const one = render(gateway(), ps, lookup, noSecrets);
  const two = render(gateway(), [...ps].reverse(), lookup, noSecrets);
  assert.deepEqual(one.files, two.files);
  assert.equal(one.hash, two.hash);
});

test("secret options become mounted files; their revision moves the hash; a missing one is a ResolvedRefs failure", () => {
  const backendSecret = pipeline("s", {
    middleware: [
      {
        name: "auth",
        type: "basic_auth",
        secretOptions: [
          { option: "username", secretKeyRef: { name: "creds", key: "user" } },
          { option: "password", secretKeyRef: { name: "creds", key: "pw" } },
        ],
      },
    ],
  });
  const creds = (pw: string, revision: string) => (ns: string, n: string) =>
    ns === "ns" && n === "creds" ? { data: { user: Buffer.from("alice"), pw: Buffer.from(pw) }, revision } : undefined;

  const r1 = render(gateway(), [backendSecret], lookup, creds("hunter2", "uid-1/41"));
  assert.equal(outcome(r1, "s").programmed, true, JSON.stringify(r1.pipelines));
  assert.deepEqual(Object.keys(r1.secrets).sort(), ["ns.s.middleware.auth.password", "ns.s.middleware.auth.username"]);
  assert.equal(r1.secrets["ns.s.middleware.auth.password"]!.toString(), "hunter2");
  for (const text of Object.values(r1.files)) assert.ok(!text.includes("hunter2"), "secret value in a ConfigMap");
  assert.match(
    r1.files["pipeline.ns.s.toml"]!,
    // Relative to the config directory: /etc/harmony/secrets in a pod, the sibling directory anywhere else.
    /password_file = "\.\.\/secrets\/ns\.s\.middleware\.auth\.password"/,
  );
  // The ConfigMap must not carry a digest anyone who reads ConfigMaps could test password guesses
  // against: the old header was sha256 over sorted "key\0value\0" pairs.
  const old = createHash("sha256");
  for (const [k, v] of Object.entries(r1.secrets).sort(([a], [b]) => a.localeCompare(b)))
    old.update(k).update("\0").update(v).update("\0");
  const oldDigest = old.digest("hex");
  for (const text of Object.values(r1.files))
    assert.ok(!text.includes(oldDigest), "value-derived digest in a ConfigMap");
  assert.notEqual(r1.hash, createHash("sha256").update(oldDigest).digest("hex"));
  // Same value under a new revision of the Secret: a reload; same revision: the same bytes.
  const r2 = render(gateway(), [backendSecret], lookup, creds("hunter3", "uid-1/42"));
  assert.notEqual(r1.hash, r2.hash, "a changed Secret changes the config hash");
  assert.equal(render(gateway(), [backendSecret], lookup, creds("hunter2", "uid-1/41")).hash, r1.hash);

  const missing = render(gateway(), [backendSecret], lookup, noSecrets);
  assert.deepEqual(outcome(missing, "s").failure, {
    condition: "ResolvedRefs",
    reason: "SecretNotFound",
    message: "spec.middleware[0].secretOptions[0]: no Secret ns/creds",
  });
});

test("problems read in spec paths; unknown option keys are reported with the closest known key", () => {
  const r = render(
    gateway(),
    [
      pipeline("typo", {
        middleware: [
          { name: "ok", type: "passthru" },
          { name: "auth", type: "jwt_auth", options: { jwks_url: "https://idp/jwks", audiance: "api", isuer: "idp" } },
        ],
        backends: [{ service: "http", url: "http://x", options: { retrys: 2 } }],
      }),
      pipeline("typo-secret", {
        endpoints: [{ name: "other" }],
        middleware: [
          {
            name: "auth",
            type: "jwt_auth",
            secretOptions: [{ option: "secert", secretKeyRef: { name: "k", key: "k" } }],
          },
        ],
      }),
    ],
    lookup,
    () => ({ data: { k: Buffer.from("0123456789abcdef0123456789abcdef") }, revision: "u/1" }),
  );
  // The data plane would ignore unknown keys and run without them (no audience check): the
  // pipeline is left out, and the status says why, with a suggestion (admission refuses them
  // first: test/admission.test.ts).
  const typo = outcome(r, "typo");
  assert.equal(typo.programmed, false);
  assert.equal(typo.failure?.condition, "Accepted");
  assert.equal(typo.failure?.reason, "InvalidOptions");
  assert.equal(r.files["pipeline.ns.typo.toml"], undefined, "a misspelt option must not run");
  const msg = typo.failure?.message ?? "";
  assert.match(msg, /spec\.middleware\[1\]\.options\.audiance: unknown option; did you mean "audience"\?/);
  assert.match(msg, /spec\.middleware\[1\]\.options\.isuer: unknown option; did you mean "issuer"\?/);
  assert.match(msg, /spec\.backends\[0\]\.options\.retrys: unknown option; did you mean "retries"\?/);
  assert.doesNotMatch(msg, /ns\.typo\.|pipeline\.ns|\.toml/, "no rendered-TOML names or files");
  // No key at all is an error, and the misspelt secret option is named as the likely cause.
  assert.match(
    outcome(r, "typo-secret").failure?.message ?? "",
    /spec\.middleware\[0\]\.secretOptions\[0\]\.option: unknown option; did you mean "secret"\?/,
  );
});

test("the real data plane serves a render from a kubelet-style mount and reports its hash", async (t) => {
  const upstream = await startUpstream((req, res) => res.end(`upstream got ${req.url}`));
  t.after(() => upstream.close());
  const ports = { web: await freePort(), mgmt: await freePort() };
  const r = render(
    gateway(ports),
    [pipeline("live", { backends: [{ service: "http", url: upstream.url }] })],
    lookup,
    noSecrets,
  );
  assert.equal(outcome(r, "live").programmed, true);

  const mount = tempDir();
  mkdirSync(join(mount, "..2026_11_28_00_00_00.1"));
  for (const [k, v] of Object.entries(r.files)) {
    writeFileSync(join(mount, "..2026_11_28_00_00_00.1", k), v);
    symlinkSync(`..data/${k}`, join(mount, k));
  }
  symlinkSync("..2026_11_28_00_00_00.1", join(mount, "..data"));
  const dp = await startDataplane(join(mount, "config.toml"));
  t.after(() => dp.stop());
  const res = await http(`http://127.0.0.1:${ports.web}/api/patients?x=1`);
  assert.equal(res.status, 200);
  assert.equal(res.text, "upstream got /patients?x=1");
  const ready = (await http(`http://127.0.0.1:${ports.mgmt}/readyz`)).json() as { config_hash: string };
  assert.equal(ready.config_hash, r.hash, "the data plane reports exactly the hash the operator computed");
});

test("a gateway the CRD's CEL rules would refuse (stored before them) gets problems in spec paths, not a render", () => {
  const gw = gateway();
  gw.spec.networks = [
    { name: "management", port: 8080 },
    { name: "8443", port: 8443 },
    { name: "patient-records-public", port: 8081, bindAddress: "localhost" },
    { name: "patient-records-private", port: 9090 },
  ];
  gw.spec.management = undefined;
  const r = render(gw, [pipeline("good", {})], lookup, noSecrets);
  assert.deepEqual(r.files, {}, "nothing rendered");
  assert.deepEqual(r.gatewayProblems, [
    'spec.networks[0].name: "management" is reserved for the management listener',
    `spec.networks[1].name: the first 15 characters ("8443") name a container port: they need a letter, and no '--' or trailing '-'`,
    'spec.networks[2].bindAddress: "localhost" is not an IPv4 or IPv6 address',
    'spec.networks[3].name: its first 15 characters are those of spec.networks[2].name ("patient-records")',
    "spec.networks[3].port: 9090 is the management port",
  ]);
  assert.equal(outcome(r, "good").programmed, false);
});

test("a kept render cache gives what a fresh render gives, through edits, conflicts and removals", () => {
  const cache = new RenderCache();
  const eps = new Map<string, HarmonyEndpoint>();
  const ps: HarmonyPipeline[] = [];
  for (let i = 0; i < 6; i++) {
    eps.set(`ns/e${i}`, {
      ...endpoint(`e${i}`, `/p${i}`),
      metadata: { name: `e${i}`, namespace: "ns", uid: `e${i}`, generation: 1 },
    });
    ps.push({
      ...pipeline(`p${i}`, { endpoints: [{ name: `e${i}` }] }),
      metadata: { ...pipeline(`p${i}`, {}).metadata, uid: `p${i}` },
    });
  }
  const get = (ns: string, n: string) => eps.get(`${ns}/${n}`);
  const both = (pipelines: HarmonyPipeline[]) => {
    const kept = render(gateway(), pipelines, get, noSecrets, undefined, undefined, cache);
    const fresh = render(gateway(), pipelines, get, noSecrets);
    assert.deepEqual(kept, fresh);
    return kept;
  };
  assert.equal(both(ps).pipelines.filter((p) => p.programmed).length, 6);
  // p3's endpoint now takes p1's route: the newer claim loses, in both.
  eps.set("ns/e3", {
    ...eps.get("ns/e3")!,
    metadata: { ...eps.get("ns/e3")!.metadata, generation: 2 },
    spec: { service: "http", pathPrefix: "/p1" },
  });
  assert.equal(outcome(both(ps), "p3").failure?.reason, "RouteConflict");
  // p1 goes: p3 has the route.
  assert.equal(outcome(both(ps.filter((p) => p.metadata.name !== "p1")), "p3").programmed, true);
  // An edit of a pipeline's spec (new generation) renders it again.
  const p0 = {
    ...ps[0]!,
    metadata: { ...ps[0]!.metadata, generation: 4 },
    spec: { ...ps[0]!.spec, description: "edited" },
  };
  const r = both([p0, ...ps.slice(1)]);
  assert.match(r.files["pipeline.ns.p0.toml"]!, /edited/);
});
