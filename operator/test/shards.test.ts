/** Where a large gateway's files go (translator/shards.ts): stable, bounded, whole. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_SHARDS, SHARD_BUDGET, planShards, shardCount } from "../src/translator/shards.js";
import { SHARD_MANIFEST, shardDigest, shardDigestKey } from "@harmony/dataplane";

/** `n` pipelines of about `size` bytes each, plus config.toml, as render() names them. */
function files(n: number, size = 600): Record<string, string> {
  const out: Record<string, string> = { "config.toml": "[proxy]\nid = 'x'\n" };
  for (let i = 0; i < n; i++) out[`pipeline.ns.pl-${i}.toml`] = `# ${i}\n` + "x".repeat(size);
  return out;
}

const where = (layout: ReturnType<typeof planShards>) =>
  new Map(layout.shards.flatMap((s) => Object.keys(s.data).map((k) => [k, s.name] as const)));

test("a small config is not sharded: the main ConfigMap holds it all, as before", () => {
  const f = files(10);
  assert.deepEqual(planShards("edge-harmony-config", f, 0), { main: f, shards: [] });
  // 1,000 pipelines of the size operator-scale renders (about 540 bytes each): still one ConfigMap.
  const thousand = files(1000, 520);
  assert.deepEqual(planShards("edge-harmony-config", thousand, 0), { main: thousand, shards: [] });
});

test("a large config shards under the budget, every pipeline once, the main ConfigMap last names them", () => {
  const f = files(2500);
  const l = planShards("edge-harmony-config", f, 0);
  assert.ok(l.shards.length >= 2 && (l.shards.length & (l.shards.length - 1)) === 0, `${l.shards.length}`);
  for (const s of l.shards) {
    const size = Object.entries(s.data).reduce((n, [k, v]) => n + k.length + v.length, 0);
    assert.ok(size <= SHARD_BUDGET + 100, `${s.name}: ${size}`);
    assert.equal(s.data[shardDigestKey(s.name)], shardDigest(s.data));
    assert.match(s.name, new RegExp(`^edge-harmony-config-${l.shards.length}-\\d+$`));
  }
  assert.equal(where(l).size, 2500 + l.shards.length);
  assert.deepEqual(Object.keys(l.main).sort(), ["config.toml", SHARD_MANIFEST]);
  assert.equal(shardCount(l.main), l.shards.length);
  assert.deepEqual(JSON.parse(l.main[SHARD_MANIFEST]!), {
    shards: Object.fromEntries(l.shards.map((s) => [s.name, s.digest])),
  });
});

test("placement is stable: an edit or a new pipeline changes one shard; growing moves only within k → k, k+N", () => {
  const f = files(2500);
  const a = planShards("gw", f, 0);
  const n = a.shards.length;
  const edited = { ...f, "pipeline.ns.pl-7.toml": "# edited\n" };
  const b = planShards("gw", edited, shardCount(a.main));
  const changed = b.shards.filter((s, i) => s.digest !== a.shards[i]!.digest).map((s) => s.name);
  assert.deepEqual(changed, [where(a).get("pipeline.ns.pl-7.toml")]);
  // Twice the pipelines: N doubles, and a pipeline in shard k goes to k or k+N.
  const grown = planShards("gw", { ...f, ...files(5000) }, n);
  assert.equal(grown.shards.length, 2 * n);
  const before = where(a);
  for (const [k, s] of where(grown)) {
    if (!k.startsWith("pipeline.") || !before.has(k)) continue;
    const old = Number(before.get(k)!.split("-").pop());
    const now = Number(s.split("-").pop());
    assert.ok(now === old || now === old + n, `${k}: ${old} → ${now}`);
  }
});

test("N shrinks only when half as many shards would be half full, and never back to none", () => {
  const big = planShards("gw", files(2500), 0);
  const n = big.shards.length;
  // A few pipelines fewer: same N (no flapping at the boundary).
  assert.equal(planShards("gw", files(2300), n).shards.length, n);
  // Almost all gone: one shard, still sharded.
  const small = planShards("gw", files(5), n);
  assert.equal(small.shards.length, 1);
  assert.ok(SHARD_MANIFEST in small.main);
});

test("a pipeline's own files (fileOptions) go with it; the gateway's stay in main", () => {
  const f = { ...files(2500), "ns.pl-3.middleware.m.file.spec": "{}", "gateway.extra": "x" };
  const l = planShards("gw", f, 0);
  const w = where(l);
  assert.equal(w.get("ns.pl-3.middleware.m.file.spec"), w.get("pipeline.ns.pl-3.toml"));
  assert.equal(l.main["gateway.extra"], "x");
});

test("a pipeline larger than a shard's budget does not make N double again and again", () => {
  const f = { ...files(600), "pipeline.ns.huge.toml": "x".repeat(SHARD_BUDGET + 1) };
  const l = planShards("gw", f, 0);
  // 600 small ones (~380 KiB) fit one shard's budget: two shards, the big one's over budget but
  // under the object limit, not 256 shards of which one holds it.
  assert.ok(l.shards.length <= 2 && l.shards.length < MAX_SHARDS, `${l.shards.length} shards`);
  assert.equal(where(l).size, 601 + l.shards.length);
});
