/**
 * The data-plane and operator images for the real-node suite: `scripts/images.sh` (what `make images`
 * runs without Docker) into a cache keyed by the sources they are built from, so a warm run reuses
 * them and a change to the product, the lockfile or the image scripts builds them again.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../../dataplane/test/helpers.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const IMAGE_TAG = "0.1.0";
const INPUTS = ["dataplane", "operator", "scripts", "package.json", "package-lock.json", "tsconfig.base.json"];

export interface Images {
  dataplane: string;
  operator: string;
  /** Directory with the archives and their SBOMs (harmony-<name>.cdx.json). */
  dir: string;
}

/** Sources (committed and not) + Node version: what the images' bytes depend on. */
function sourceKey(): string {
  const git = (args: string[]) => execFileSync("git", ["-C", ROOT, ...args], { maxBuffer: 1 << 28 });
  return createHash("sha256")
    .update(git(["ls-files", "-s", "--", ...INPUTS]))
    .update(git(["diff", "HEAD", "--", ...INPUTS]))
    .update(git(["ls-files", "--others", "--exclude-standard", "--", ...INPUTS]))
    .update(process.version)
    .digest("hex")
    .slice(0, 16);
}

export async function buildImages(): Promise<Images> {
  const dir = join(process.env.HARMONY_CACHE ?? join(homedir(), ".cache", "harmony"), "images", sourceKey());
  const images = {
    dir,
    dataplane: join(dir, `harmony-dataplane-${IMAGE_TAG}.oci.tar`),
    operator: join(dir, `harmony-operator-${IMAGE_TAG}.oci.tar`),
  };
  if (existsSync(images.dataplane) && existsSync(images.operator)) return images;
  // One build per key at a time (the suite's test files run in parallel): the others wait on the lock
  // and then find the images there.
  mkdirSync(dirname(dir), { recursive: true });
  // Keeps the two newest builds: each is ~130 MiB.
  const script =
    'if [ ! -d "$1" ]; then rm -rf "$1.tmp" && bash "$2" "$1.tmp" "$3" && mv "$1.tmp" "$1"; fi; ls -dt "${1%/*}"/*/ | tail -n +3 | xargs -r rm -rf';
  const r = await run(
    "flock",
    [`${dir}.lock`, "bash", "-c", script, "build", dir, join(ROOT, "scripts", "images.sh"), IMAGE_TAG],
    {},
  );
  if (r.code !== 0) throw new Error(`scripts/images.sh failed (${r.code}):\n${r.stderr.slice(-4000)}`);
  return images;
}
