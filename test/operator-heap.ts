/**
 * The operator's node flags as its image sets them (docker/operator.Dockerfile's NODE_OPTIONS), and
 * the same flags for a process that runs outside a container: bench/operator-scale runs the operator
 * as the chart's default install would, and test/operator-heap.test.ts fails when the image, the
 * chart and the bench drift apart.
 *
 * The image sizes V8's old space from the container's memory limit with Node's own
 * `--max-old-space-size-percentage` (a share of the cgroup limit when there is one, else of the
 * machine's memory). A bench process has no cgroup limit, so the percentage would apply to the whole
 * machine: it gets the size Node would compute under the chart's default limit instead.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ROOT } from "../dataplane/test/helpers.js";

const MiB = 2 ** 20;
const PERCENT_FLAG = "--max-old-space-size-percentage=";

/** The flags of the image's `ENV NODE_OPTIONS=...`, in order. */
export function imageNodeFlags(dockerfile = join(ROOT, "docker/operator.Dockerfile")): string[] {
  const line = readFileSync(dockerfile, "utf8")
    .split("\n")
    .find((l) => /^ENV NODE_OPTIONS=/.test(l));
  if (!line) throw new Error(`${dockerfile} sets no NODE_OPTIONS`);
  return line
    .slice("ENV NODE_OPTIONS=".length)
    .replace(/^"(.*)"$/, "$1")
    .split(/\s+/)
    .filter(Boolean);
}

/** A Kubernetes memory quantity ("1Gi", "768Mi", "1G", "536870912") in bytes. */
export function quantityBytes(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q).trim());
  if (!m) throw new Error(`not a memory quantity: ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ""] ?? 1;
  return Math.floor(Number(m[1]) * unit);
}

/** The operator container's memory limit in the chart's default values, in bytes. */
export function chartMemoryLimitBytes(values = join(ROOT, "charts/harmony/values.yaml")): number {
  const v = parse(readFileSync(values, "utf8")) as { resources?: { limits?: { memory?: string } } };
  const limit = v.resources?.limits?.memory;
  if (!limit) throw new Error(`${values} sets no resources.limits.memory`);
  return quantityBytes(limit);
}

/** The image's share of the memory limit for old space, in percent (undefined: not set). */
export function oldSpacePercent(flags = imageNodeFlags()): number | undefined {
  const f = flags.find((x) => x.startsWith(PERCENT_FLAG));
  return f === undefined ? undefined : Number(f.slice(PERCENT_FLAG.length));
}

/** What Node makes of the percentage under a memory limit: whole MiB, rounded down (node_options.cc). */
export function oldSpaceMiB(percent: number, limitBytes: number): number {
  return Math.floor((limitBytes * (percent / 100)) / MiB);
}

/**
 * The image's flags with the percentage turned into the size Node would compute in a container
 * with the chart's default memory limit: how the bench runs the operator.
 */
export function benchNodeFlags(flags = imageNodeFlags(), limitBytes = chartMemoryLimitBytes()): string[] {
  return flags.map((f) =>
    f.startsWith(PERCENT_FLAG)
      ? `--max-old-space-size=${oldSpaceMiB(Number(f.slice(PERCENT_FLAG.length)), limitBytes)}`
      : f,
  );
}
