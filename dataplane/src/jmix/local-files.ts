/** Local-disk helpers for packages being built, unpacked or stored on a filesystem. */
import { lstatSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, resolve, sep } from "node:path";

export interface PackageFile {
  /** Path relative to the package root, with `/` separators. */
  rel: string;
  abs: string;
  size: number;
}

/** Regular files under `dir`, sorted by relative path; anything else (links, devices) is an error. */
export async function listFiles(dir: string, prefix = ""): Promise<PackageFile[]> {
  const out: PackageFile[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, d.name);
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...(await listFiles(abs, rel)));
    else if (d.isFile()) out.push({ rel, abs, size: (await stat(abs)).size });
    else throw new Error(`${rel} is neither a file nor a directory`);
  }
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/** `p` resolved, if it is inside `root`; throws otherwise. */
export function within(root: string, p: string): string {
  const r = resolve(root);
  const abs = resolve(r, p);
  if (abs !== r && !abs.startsWith(r + sep)) throw new Error(`${p} is outside ${root}`);
  return abs;
}

/** Existence check that does not follow a final symlink. */
export function isPlainFile(p: string): boolean {
  try {
    return lstatSync(p).isFile();
  } catch {
    return false;
  }
}
