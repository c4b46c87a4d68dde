/**
 * The operator's heap setting in one place: the image's NODE_OPTIONS (a share of the container's
 * memory limit, --max-old-space-size-percentage), the chart's default memory limit, and the flags
 * bench/operator-scale runs the operator with (the size Node computes from that share under that
 * limit). Fails when one of them changes without the others, when the Node the image runs stops
 * following the rule, or when the default limit leaves too little old space for 10,000 pipelines
 * (bench/README.md, operator-scale: 542 MiB of old space used at most) or too little for the rest of
 * the process.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../dataplane/test/helpers.js";
import {
  benchNodeFlags,
  chartMemoryLimitBytes,
  imageNodeFlags,
  oldSpaceMiB,
  oldSpacePercent,
  quantityBytes,
} from "./operator-heap.js";

const MiB = 2 ** 20;

/** A fresh node with exactly these NODE_OPTIONS: its heap limit and the memory Node sizes it from. */
function heapOf(nodeOptions: string): { limitMiB: number; effectiveBytes: number } {
  const env = { ...process.env, NODE_OPTIONS: nodeOptions };
  const out = execFileSync(
    process.execPath,
    [
      "-e",
      `const c = process.constrainedMemory();
       console.log(JSON.stringify({
         limit: require("node:v8").getHeapStatistics().heap_size_limit,
         // Node's rule: the cgroup limit when there is one, else the machine's memory.
         effective: c > 0 && c < 2 ** 63 ? c : require("node:os").totalmem(),
       }));`,
    ],
    { env, encoding: "utf8" },
  );
  const r = JSON.parse(out) as { limit: number; effective: number };
  return { limitMiB: r.limit / MiB, effectiveBytes: r.effective };
}

test("memory quantities parse as Kubernetes writes them", () => {
  assert.equal(quantityBytes("1Gi"), 2 ** 30);
  assert.equal(quantityBytes("768Mi"), 768 * MiB);
  assert.equal(quantityBytes("1G"), 1e9);
  assert.equal(quantityBytes(536870912), 512 * MiB);
  assert.throws(() => quantityBytes("lots"), /not a memory quantity/);
});

test("the image sizes old space as a share of the memory limit, and its Node follows that share", () => {
  const flags = imageNodeFlags();
  assert.ok(flags.includes("--max-semi-space-size=2"), `image flags: ${flags.join(" ")}`);
  const percent = oldSpacePercent(flags);
  assert.ok(
    percent !== undefined && percent > 0 && percent <= 100,
    `no --max-old-space-size-percentage in ${flags.join(" ")}`,
  );
  // Node itself applies the share (to the cgroup limit in a container, here to this machine): the
  // heap limit is that many MiB of old space plus the young generation, a few MiB with 2 MiB semi-spaces.
  const image = heapOf(flags.join(" "));
  const young = image.limitMiB - oldSpaceMiB(percent, image.effectiveBytes);
  assert.ok(young >= 0 && young < 16, `heap limit ${image.limitMiB} MiB for ${percent} % of ${image.effectiveBytes} B`);
});

test("the bench runs the operator with the image's flags as the chart's default limit sizes them", () => {
  const flags = imageNodeFlags();
  const percent = oldSpacePercent(flags)!;
  const old = oldSpaceMiB(percent, chartMemoryLimitBytes());
  const bench = benchNodeFlags();
  assert.deepEqual(
    bench,
    flags.map((f) => (f.startsWith("--max-old-space-size-percentage=") ? `--max-old-space-size=${old}` : f)),
  );
  // The same heap as the image's flags would give in a container with that limit: old space as
  // computed, the same young generation.
  const image = heapOf(flags.join(" "));
  const benched = heapOf(bench.join(" "));
  assert.equal(
    benched.limitMiB - old,
    image.limitMiB - oldSpaceMiB(percent, image.effectiveBytes),
    "young generation differs between the image's and the bench's flags",
  );
  // And the bench passes them (unless IMAGE_FLAGS=0).
  assert.ok(
    readFileSync(join(ROOT, "bench/operator-scale/run.ts"), "utf8").includes(
      'process.env.IMAGE_FLAGS === "0" ? [] : benchNodeFlags()',
    ),
    "bench/operator-scale/run.ts does not run the operator with benchNodeFlags()",
  );
});

test("the chart's default limit holds 10,000 pipelines' old space and the rest of the process", () => {
  const limitMiB = chartMemoryLimitBytes() / MiB;
  const old = oldSpaceMiB(oldSpacePercent()!, chartMemoryLimitBytes());
  // 10,000 pipelines on one gateway used at most 585 MiB of old generation (old, code and large
  // objects, which V8 counts against the old-space size; bench/README.md). V8 needs room above the
  // live set, or it collects without end and then stops with "heap out of memory".
  assert.ok(old >= 700, `old space ${old} MiB under the default ${limitMiB} MiB limit: too small for 10,000 pipelines`);
  // What is not old space: young generation, off-heap buffers, Node itself (117 MiB at 1,000
  // pipelines, 240-320 MiB at 10,000: RSS less heap used).
  assert.ok(limitMiB - old >= 384, `only ${limitMiB - old} MiB of the ${limitMiB} MiB limit left beside old space`);
});
