/**
 * A config split across ConfigMaps (README: "Large gateways: config shards"). The operator writes
 * a gateway's pipelines into shard ConfigMaps and its main ConfigMap last; the main one carries a
 * manifest (`harmony-shards.json`: shard name → digest of that shard's data) and every shard
 * carries its own digest as `<shard name>.sha256`. All of them land flat in one directory (a
 * projected volume, or the API source's assembled tree), so the loader needs nothing new.
 *
 * What this module guards: a tree is served only when every shard the manifest names is there
 * with the digest the manifest expects. The kubelet (or the API watch) may show shard k's new
 * content before shard j's, or the main ConfigMap before a shard; serving such a mix could drop
 * pipelines, so it waits for the set to match instead.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const SHARD_MANIFEST = "harmony-shards.json";
export const shardDigestKey = (shard: string): string => `${shard}.sha256`;
/** Files that belong to the shard bookkeeping, not the config (never loaded, never hashed). */
export const isShardFile = (name: string): boolean => name === SHARD_MANIFEST || name.endsWith(".sha256");

export interface ShardManifest {
  /** Shard ConfigMap name → sha256 (hex) of its data. */
  shards: Record<string, string>;
}

/** The digest a shard is known by: its keys and values in key order, its own digest key excluded. */
export function shardDigest(data: Readonly<Record<string, string>>): string {
  const h = createHash("sha256");
  for (const k of Object.keys(data).sort()) {
    if (k.endsWith(".sha256")) continue;
    h.update(k).update("\0").update(data[k]!).update("\0");
  }
  return h.digest("hex");
}

export function parseManifest(text: string): ShardManifest {
  const doc = JSON.parse(text) as { shards?: unknown };
  const shards = doc.shards;
  if (!shards || typeof shards !== "object" || Array.isArray(shards))
    throw new Error(`${SHARD_MANIFEST}: expected {"shards": {"<name>": "<sha256>"}}`);
  for (const [k, v] of Object.entries(shards))
    if (typeof v !== "string" || !/^[0-9a-f]{64}$/.test(v)) throw new Error(`${SHARD_MANIFEST}: bad digest for ${k}`);
  return { shards: shards as Record<string, string> };
}

/**
 * The shards of a mounted tree that are missing or not at the manifest's digest; [] when the tree
 * is whole or not sharded at all (no manifest: a plain config directory).
 */
export function shardGaps(dir: string, read: (path: string) => string = (p) => readFileSync(p, "utf8")): string[] {
  let text: string;
  try {
    text = read(join(dir, SHARD_MANIFEST));
  } catch {
    return [];
  }
  let manifest: ShardManifest;
  try {
    manifest = parseManifest(text);
  } catch (e) {
    return [(e as Error).message];
  }
  const gaps: string[] = [];
  for (const [name, digest] of Object.entries(manifest.shards)) {
    let have: string | undefined;
    try {
      have = read(join(dir, shardDigestKey(name))).trim();
    } catch {
      have = undefined;
    }
    if (have !== digest) gaps.push(name);
  }
  return gaps;
}
