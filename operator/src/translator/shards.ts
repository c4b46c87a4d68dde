/**
 * Splits a gateway's rendered files across ConfigMaps once they outgrow one (README: "Large
 * gateways: config shards"). A ConfigMap holds at most 1 MiB; 1,000 small pipelines fill half.
 *
 * - Few pipelines: everything stays in the main ConfigMap, exactly as before (no shards).
 * - Beyond UNSHARDED_BUDGET: each pipeline (its TOML and the files only it uses) goes to shard
 *   `hash(pipeline) mod N` of N shards, N a power of two grown until every shard is under the
 *   budget (a shard over it only because one pipeline alone is stays, if under the 1 MiB limit). The main ConfigMap keeps config.toml and a manifest of the shards' digests.
 * - Shard names carry N (`<main>-<N>-<k>`): a change of N is a new set of ConfigMaps, written in
 *   full beside the old one, which keeps serving the pods that mount it until they are replaced.
 *   N changes only when a shard passes the budget (doubles) or the whole would fit in half as many
 *   shards at half the budget (halves), so placement is stable and the set rarely changes.
 * - A gateway that once sharded stays sharded (N ≥ 1): going back would put keys in the main
 *   ConfigMap that old pods also see in their shards.
 *
 * All keys stay flat (a ConfigMap key cannot hold `/`) and land in one projected volume, so the
 * data plane loads the same tree, with the same hash, whatever the layout.
 */
import { createHash } from "node:crypto";
import { SHARD_MANIFEST, shardDigest, shardDigestKey } from "@harmony/dataplane";

/** A shard's data target (half a ConfigMap: room for a shard to grow before N doubles). */
export const SHARD_BUDGET = 512 * 1024;
/**
 * The size past which a gateway starts sharding: three quarters of a ConfigMap, so a gateway of
 * 1,000 small pipelines (about 540 KiB) keeps its single ConfigMap, and one that grows still
 * shards well before the 1 MiB limit.
 */
export const UNSHARDED_BUDGET = 768 * 1024;
/** What a shard may hold at most: the ConfigMap limit (1 MiB) less room for its metadata. */
export const SHARD_LIMIT = 1_048_576 - 16_384;
/** At most this many shards (256 × 512 KiB: 128 MiB of config, far past what etcd should hold). */
export const MAX_SHARDS = 256;

export interface Shard {
  name: string;
  data: Record<string, string>;
  digest: string;
}

export interface ShardLayout {
  /** The main ConfigMap's data. */
  main: Record<string, string>;
  /** Empty when not sharded. */
  shards: Shard[];
}

export const shardName = (main: string, n: number, k: number) => `${main}-${n}-${k}`;

/** How many shards a main ConfigMap's manifest names (0: not sharded). */
export function shardCount(mainData: Readonly<Record<string, string>> | undefined): number {
  const text = mainData?.[SHARD_MANIFEST];
  if (!text) return 0;
  try {
    return Object.keys((JSON.parse(text) as { shards?: object }).shards ?? {}).length;
  } catch {
    return 0;
  }
}

/**
 * Which pipeline a file belongs to: `pipeline.<ns>.<name>.toml`, or a file a pipeline brought
 * (`<ns>.<name>.<part>.file.<option>`, render.ts). Undefined: the gateway's own (stays in main).
 */
function owners(files: Readonly<Record<string, string>>): Map<string, string> {
  const ids = new Set<string>();
  for (const k of Object.keys(files)) {
    const m = /^pipeline\.(.+)\.toml$/.exec(k);
    if (m) ids.add(m[1]!);
  }
  const out = new Map<string, string>();
  for (const k of Object.keys(files)) {
    const m = /^pipeline\.(.+)\.toml$/.exec(k);
    if (m) {
      out.set(k, m[1]!);
      continue;
    }
    // The longest pipeline id the key starts with (names may hold dots).
    const parts = k.split(".");
    for (let i = parts.length - 1; i >= 2; i--) {
      const prefix = parts.slice(0, i).join(".");
      if (ids.has(prefix)) {
        out.set(k, prefix);
        break;
      }
    }
  }
  return out;
}

const bucket = (owner: string) => createHash("sha256").update(owner).digest().readUInt32BE(0);

function split(files: Readonly<Record<string, string>>, own: Map<string, string>, n: number) {
  const parts: Record<string, string>[] = Array.from({ length: n }, () => ({}));
  const sizes = new Array<number>(n).fill(0);
  const members = Array.from({ length: n }, () => new Map<string, number>());
  for (const [k, v] of Object.entries(files)) {
    const o = own.get(k);
    if (o === undefined) continue;
    const i = bucket(o) & (n - 1);
    const size = k.length + Buffer.byteLength(v);
    parts[i]![k] = v;
    sizes[i]! += size;
    members[i]!.set(o, (members[i]!.get(o) ?? 0) + size);
  }
  // A shard over the budget because one pipeline alone is (but under the object limit) is left
  // as it is: doubling N would only move its neighbours out, one halving at a time.
  const overfull = sizes.some(
    (size, i) => size > SHARD_BUDGET && !(Math.max(...members[i]!.values()) > SHARD_BUDGET && size <= SHARD_LIMIT),
  );
  return { parts, max: Math.max(...sizes), overfull };
}

/**
 * The layout for `files` (render output), given how many shards the main ConfigMap names now
 * (`current`, 0 when not sharded).
 */
export function planShards(mainName: string, files: Readonly<Record<string, string>>, current: number): ShardLayout {
  const total = Object.entries(files).reduce((s, [k, v]) => s + k.length + Buffer.byteLength(v), 0);
  if (current === 0 && total <= UNSHARDED_BUDGET) return { main: { ...files }, shards: [] };
  const own = owners(files);
  let n = Math.max(1, current);
  let plan = split(files, own, n);
  while (plan.overfull && n < MAX_SHARDS) plan = split(files, own, (n *= 2));
  while (n > 1) {
    const half = split(files, own, n / 2);
    if (half.max > SHARD_BUDGET / 2) break;
    n /= 2;
    plan = half;
  }
  const shards = plan.parts.map((data, k) => {
    const name = shardName(mainName, n, k);
    const digest = shardDigest(data);
    return { name, digest, data: { ...data, [shardDigestKey(name)]: digest } };
  });
  const main: Record<string, string> = {};
  for (const [k, v] of Object.entries(files)) if (!own.has(k)) main[k] = v;
  main[SHARD_MANIFEST] = JSON.stringify({ shards: Object.fromEntries(shards.map((s) => [s.name, s.digest])) });
  return { main, shards };
}
