/**
 * The API config source on a sharded config (README: Large gateways), against a real
 * kube-apiserver with ConfigMaps written by hand in the worst order: a shard that loses a pipeline
 * before the one that gains it, the main ConfigMap (the manifest) last, and a manifest naming a
 * shard that does not exist yet. The data plane never serves fewer pipelines than the set has.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { writeAtomically } from "./syncer.js";
import { eventually, http, startDataplane, tempDir, type Dataplane } from "../dataplane/test/helpers.js";
import { SHARD_MANIFEST, shardDigest, shardDigestKey } from "../dataplane/src/config/shards.js";

const NS = "shards";
const MAIN = "edge-harmony-config";
let cp: ControlPlane;
let dp: Dataplane | undefined;

before(async () => {
  cp = await startControlPlane();
});
after(async () => {
  await dp?.stop();
  await cp?.stop();
});

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const config = `[proxy]
id = "shards/edge"
pipelines_path = "."

[logging]
log_level = "debug"

[management]
enabled = true
network = "management"

[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0

[network.default.http]
bind_address = "127.0.0.1"
bind_port = 0
`;

const pipeline = (name: string, text = "echo") => `
[pipelines.${name}]
description = "${text}"
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]
[endpoints.${name}_in]
service = "echo"
[endpoints.${name}_in.options]
path_prefix = "/${name}"
[backends.${name}_out]
service = "echo"
`;

const shard = (name: string, files: Record<string, string>) => ({
  ...files,
  [shardDigestKey(name)]: shardDigest(files),
});
const mainData = (shards: Record<string, Record<string, string>>) => ({
  "config.toml": config,
  [SHARD_MANIFEST]: JSON.stringify({
    shards: Object.fromEntries(Object.entries(shards).map(([n, d]) => [n, d[shardDigestKey(n)]])),
  }),
});

/** Creates or replaces a ConfigMap's data (through a file: a shard may be larger than an argument). */
async function put(name: string, data: Record<string, string>): Promise<void> {
  const file = join(tempDir(), "cm.json");
  writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS }, data }));
  await kubectl(["apply", "--server-side", "--force-conflicts", "-f", file]);
}

test("a partial shard set from the API is never served; a manifest naming a new shard waits for it", async () => {
  await kubectl(["create", "namespace", NS]);
  let a = shard(`${MAIN}-2-0`, { "pipeline.a.toml": pipeline("a"), "pipeline.moving.toml": pipeline("moving") });
  let b = shard(`${MAIN}-2-1`, { "pipeline.b.toml": pipeline("b") });
  await put(`${MAIN}-2-0`, a);
  await put(`${MAIN}-2-1`, b);
  let main = mainData({ [`${MAIN}-2-0`]: a, [`${MAIN}-2-1`]: b });
  await put(MAIN, main);
  const dir = join(tempDir(), "config");
  writeAtomically(dir, { ...main, ...a, ...b }, 1);
  dp = await startDataplane(join(dir, "config.toml"), {}, [
    "--config-source",
    `kubernetes://${NS}/${MAIN}`,
    "--kubeconfig",
    cp.kubeconfig,
  ]);
  const d = dp;
  // The API's first revision: loaded, or found to be what the files already serve.
  await eventually("the API's first revision taken", () =>
    d.logs.some(
      (l) =>
        (l.message === "config loaded" && l.source === "kubernetes") ||
        l.message === "config unchanged; nothing to reload",
    ),
  );
  const loaded = () => d.logs.filter((l) => l.message === "config loaded");
  const url = (p: string) => d.url("default", p);
  const waiting = async (what: string, write: () => Promise<void>) => {
    const from = d.logs.length;
    await write();
    await eventually(what, () => d.logs.slice(from).some((l) => /config shards not all/.test(l.message)));
  };
  const loadsBefore = loaded().length;

  // The shard that loses "moving" first, the one that gains it next, the manifest last.
  a = shard(`${MAIN}-2-0`, { "pipeline.a.toml": pipeline("a") });
  await waiting("shard 0 without the pipeline held back", () => put(`${MAIN}-2-0`, a));
  assert.equal((await http(url("/moving/x"))).status, 200);
  b = shard(`${MAIN}-2-1`, { "pipeline.b.toml": pipeline("b"), "pipeline.moving.toml": pipeline("moving", "moved") });
  await waiting("shard 1 ahead of the manifest held back", () => put(`${MAIN}-2-1`, b));
  assert.equal(loaded().length, loadsBefore, "nothing loaded from a partial set");
  main = mainData({ [`${MAIN}-2-0`]: a, [`${MAIN}-2-1`]: b });
  await put(MAIN, main);
  await eventually("the whole set loaded", () => loaded().length > loadsBefore);
  assert.deepEqual(
    loaded()
      .slice(loadsBefore)
      .map((l) => [l.pipelines, l.source]),
    [[3, "kubernetes"]],
  );
  assert.equal((await http(url("/moving/x"))).status, 200);

  // A new set: the manifest names a shard that does not exist yet; its watch starts and waits.
  const c = shard(`${MAIN}-1-0`, {
    "pipeline.a.toml": pipeline("a"),
    "pipeline.b.toml": pipeline("b"),
    "pipeline.moving.toml": pipeline("moving", "moved"),
    "pipeline.new.toml": pipeline("new"),
  });
  const loads = loaded().length;
  await waiting("a manifest naming a missing shard held back", () => put(MAIN, mainData({ [`${MAIN}-1-0`]: c })));
  assert.equal((await http(url("/new/x"))).status, 404);
  await put(`${MAIN}-1-0`, c);
  await eventually("the new set loaded", () => loaded().length > loads, { timeoutMs: 60_000 });
  assert.equal(loaded().at(-1)!.pipelines, 4);
  assert.equal((await http(url("/new/x"))).status, 200);
  assert.equal((await http(url("/moving/x"))).status, 200);
});
