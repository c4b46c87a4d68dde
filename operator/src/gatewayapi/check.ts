/**
 * The data plane's own checker over exactly the files the pods will see: a render it would refuse
 * is reported on the Gateway (Programmed=False) and not written, so the pods keep the last good one.
 * Its hash is the one the pods report on /readyz.
 */
import { posix } from "node:path";
import { checkConfig, memoryFs } from "@harmony/dataplane";
import { CONFIG_DIR, mountedReader } from "../translator/render.js";

export function checkRender(
  files: Record<string, string>,
  secrets: Record<string, Buffer>,
): { hash: string; errors: string[] } {
  const check = checkConfig(posix.join(CONFIG_DIR, "config.toml"), {
    fs: memoryFs(Object.fromEntries(Object.entries(files).map(([k, v]) => [posix.join(CONFIG_DIR, k), v]))),
    readFile: mountedReader(files, secrets),
  });
  const errors = check.problems
    .filter((p) => p.severity === "error")
    .map((p) => `${p.path ? `${p.path}: ` : ""}${p.message}`);
  return { hash: check.hash, errors };
}
