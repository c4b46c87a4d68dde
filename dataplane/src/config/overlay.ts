/**
 * A config revision that arrived through the Kubernetes API instead of the mounted files: the
 * ConfigMap's keys stand for the files of the main config file's directory, the Secret's keys for
 * the files of the Secret's mount directory. Everything else is still read from disk. The loader,
 * resolver and compiler see the same paths as with the mounts, so problems name the same
 * file/line/key and the config hash (names and contents) is the same as for the synced files.
 */
import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { diskFs, type ConfigFs } from "./load.js";
import { readFromDisk, type FileReader } from "../build-context.js";

export interface ConfigOverlay {
  /** The directory the ConfigMap is mounted at (the main config file's directory). */
  dir: string;
  files: Record<string, string>;
  /** The directory the Secret is mounted at; unset when no Secret is watched. */
  secretDir?: string;
  secrets: Record<string, Buffer>;
}

const enoent = (p: string) => Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });

/** Key of `path` in a directory mapped to memory, or undefined when `path` lies elsewhere. */
function keyIn(dir: string | undefined, path: string): string | undefined {
  if (!dir) return undefined;
  const p = resolve(path);
  return dirname(p) === resolve(dir) ? p.slice(resolve(dir).length + 1) : undefined;
}

/** The loader's view: the ConfigMap's directory from memory, any other directory from disk. */
export function overlayFs(o: ConfigOverlay): ConfigFs {
  return {
    readFile: (p) => {
      const key = keyIn(o.dir, p);
      if (key === undefined) return diskFs.readFile(p);
      const text = o.files[key];
      if (text === undefined) throw enoent(p);
      return text;
    },
    listFiles: (dir) => (resolve(dir) === resolve(o.dir) ? Object.keys(o.files).sort() : diskFs.listFiles(dir)),
  };
}

/** Reads of `*_file` options and specs: the Secret's and ConfigMap's keys from memory (never the stale mount). */
export function overlayReader(o: ConfigOverlay): FileReader {
  return (p) => {
    const secret = keyIn(o.secretDir, p);
    if (secret !== undefined) {
      const v = o.secrets[secret];
      if (!v) throw enoent(p);
      return v;
    }
    const file = keyIn(o.dir, p);
    if (file !== undefined) {
      const v = o.files[file];
      if (v === undefined) throw enoent(p);
      return Buffer.from(v);
    }
    return readFromDisk(p);
  };
}

/** Tells two Secret revisions apart without keeping or revealing their values in the clear. */
export function secretsDigest(o: ConfigOverlay | undefined): string {
  if (!o) return "";
  const h = createHash("sha256");
  for (const k of Object.keys(o.secrets).sort()) h.update(k).update("\0").update(o.secrets[k]!).update("\0");
  return h.digest("hex");
}
