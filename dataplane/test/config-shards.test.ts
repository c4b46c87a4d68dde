/**
 * A sharded config on files (README: Large gateways): the kubelet's projected volume may show one
 * shard's new revision beside another's old one. The data plane serves a tree only when every
 * shard the manifest names is at the manifest's digest; a partial set keeps the old config serving.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeAtomically } from "../../test/syncer.js";
import { baseConfig, eventually, http, startDataplane, tempDir, type Dataplane } from "./helpers.js";
import { SHARD_MANIFEST, shardDigest, shardDigestKey } from "../src/config/shards.js";

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

/** Shard `name` holding these files, with its own digest key. */
function shard(name: string, files: Record<string, string>): Record<string, string> {
  return { ...files, [shardDigestKey(name)]: shardDigest(files) };
}
const main = (shards: Record<string, Record<string, string>>) => ({
  "config.toml": baseConfig().replace("[proxy]\n", '[proxy]\npipelines_path = "."\n'),
  [SHARD_MANIFEST]: JSON.stringify({
    shards: Object.fromEntries(Object.entries(shards).map(([n, d]) => [n, d[shardDigestKey(n)]])),
  }),
});

let dp: Dataplane | undefined;
after(() => dp?.stop());

test("a partial shard set never serves: the pipeline that moves stays served throughout", async () => {
  const dir = join(tempDir(), "config");
  let a = shard("gw-2-0", { "pipeline.a.toml": pipeline("a"), "pipeline.moving.toml": pipeline("moving") });
  let b = shard("gw-2-1", { "pipeline.b.toml": pipeline("b") });
  let seq = 0;
  const swap = () => writeAtomically(dir, { ...mainNow, ...a, ...b }, ++seq);
  let mainNow = main({ "gw-2-0": a, "gw-2-1": b });
  swap();
  dp = await startDataplane(join(dir, "config.toml"));
  const d = dp;
  const loaded = () => d.logs.filter((l) => l.message === "config loaded");
  assert.deepEqual(
    loaded().map((l) => l.pipelines),
    [3],
  );
  const url = (p: string) => d.url("default", p);
  assert.equal((await http(url("/moving/x"))).status, 200);

  // Shard 0 loses "moving" before shard 1 gains it, and the manifest comes last.
  const waiting = async (what: string) => {
    const from = d.logs.length;
    swap();
    await eventually(what, () => d.logs.slice(from).some((l) => /config shards not all/.test(l.message)));
  };
  a = shard("gw-2-0", { "pipeline.a.toml": pipeline("a") });
  await waiting("shard 0 without the pipeline refused");
  assert.equal((await http(url("/moving/x"))).status, 200, "still served from the old set");
  b = shard("gw-2-1", { "pipeline.b.toml": pipeline("b"), "pipeline.moving.toml": pipeline("moving", "moved") });
  await waiting("shard 1 ahead of the manifest refused");
  assert.equal(loaded().length, 1, "nothing loaded from a partial set");
  mainNow = main({ "gw-2-0": a, "gw-2-1": b });
  swap();
  await eventually("the whole set loaded", () => loaded().length === 2);
  assert.equal(loaded()[1]!.pipelines, 3);
  assert.equal((await http(url("/moving/x"))).status, 200);
});

test("a data plane does not start on a partial set", async () => {
  const dir = join(tempDir(), "config");
  const a = shard("gw-1-0", { "pipeline.a.toml": pipeline("a") });
  writeAtomically(dir, { ...main({ "gw-1-0": a }), ...shard("gw-1-0", {}) }, 1);
  await assert.rejects(startDataplane(join(dir, "config.toml")), /waiting for config shards: gw-1-0/);
});
