/**
 * What counts as the config on disk for a generation: the files and directories the watcher
 * follows, and the harmony networks' identity files a change of which rebuilds the generation.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import type { LoadedConfig } from "../config/load.js";
import { listFiles } from "../config/watch.js";
import { isShardFile } from "../config/shards.js";
import type { Live } from "./generation.js";

/** Identity, trust bundle and directory of every harmony network: a change rebuilds the generation. */
export function harmonyFiles(live: Live | undefined): string[] {
  const out: string[] = [];
  for (const n of live?.gen.config.harmonyNetworks.values() ?? [])
    out.push(n.certPath, n.keyPath, n.bundlePath, n.directoryPath);
  return out;
}

export function watchedDirs(live: Live | undefined): string[] {
  const l = live?.loaded;
  if (!l) return [];
  return [...new Set([l.baseDir, l.pipelinesDir, l.transformsDir, l.meshDir, ...harmonyFiles(live).map(dirname)])];
}

/**
 * The main file, every *.toml the loader scans, and every file in the transforms directory
 * (specs). Not logs or anything else that shares a directory. Before any config loaded: the main file.
 */
export function watchedFiles(configFile: string, l: LoadedConfig | undefined, harmony: string[]): string[] {
  if (!l) return [configFile];
  const toml = (n: string) => n.endsWith(".toml");
  return [
    l.mainFile,
    ...listFiles(l.pipelinesDir, toml),
    ...listFiles(l.transformsDir, () => true),
    ...listFiles(l.meshDir, toml),
    // A shard set completing changes only these (the TOML may already be there, refused as partial).
    ...listFiles(l.baseDir, isShardFile),
    ...harmony,
  ];
}

/** The files `[harmony_networks.*]` of a loaded config names, resolved as the build resolves them. */
export function harmonyPaths(loaded: LoadedConfig): string[] {
  const sections = loaded.raw.harmony_networks;
  if (!sections || typeof sections !== "object") return [];
  const out: string[] = [];
  for (const s of Object.values(sections as Record<string, Record<string, unknown>>)) {
    for (const key of ["cert_path", "key_path", "trust_bundle_path", "directory_path"]) {
      const p = s?.[key];
      if (typeof p === "string") out.push(isAbsolute(p) ? p : resolve(loaded.baseDir, p));
    }
  }
  return out;
}
