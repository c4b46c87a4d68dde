/**
 * Whether the installed undici carries the fix for nodejs/undici#5360 that scripts/patch-undici.mjs
 * applies at install: without it, an upstream that closes its connection while a response body
 * waits on backpressure can end the process. Checked once at start so a deployment that skipped
 * the install step says so in its log instead of failing some day under load.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export function undiciFixApplied(): boolean {
  try {
    const pkg = createRequire(import.meta.url).resolve("undici/package.json");
    return readFileSync(join(dirname(pkg), "lib/dispatcher/client-h1.js"), "utf8").includes(
      "harmony: nodejs/undici#5360",
    );
  } catch {
    return false;
  }
}
