/**
 * Stands in for the kubelet's ConfigMap and Secret volumes (no kubelet runs in tests): watches one
 * through `kubectl get --watch` and writes its data into a directory exactly the way the kubelet's
 * atomic writer does — a new timestamped directory, the `..data` symlink swapped by rename, one
 * symlink per key. The data plane reads that directory as it would in a pod.
 */
import type { ChildProcess } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";

/**
 * The status a kubelet reports for a running pod whose readiness probe passed (no kubelet runs in
 * these tests), on 127.0.0.1 where the test's data plane listens.
 */
export const POD_READY = {
  phase: "Running",
  podIP: "127.0.0.1",
  podIPs: [{ ip: "127.0.0.1" }],
  conditions: [{ type: "Ready", status: "True" }],
};

export interface Syncer {
  dir: string;
  /** Number of swaps done. */
  swaps(): number;
  /** When the last swap's write began (Date.now()) and how long it took, the old directory's removal included. */
  lastWrite(): { at: number; ms: number };
  stop(): void;
}

export function writeAtomically(dir: string, data: Record<string, string | Buffer>, seq: number): void {
  mkdirSync(dir, { recursive: true });
  const stamp = `..${new Date().toISOString().replace(/[-:T]/g, "_").replace(/\..*/, "")}.${seq}`;
  mkdirSync(join(dir, stamp));
  // A key may be a path (a volume's `items`): the kubelet makes its directories inside the payload
  // and links only the top-level name.
  for (const [k, v] of Object.entries(data)) {
    mkdirSync(dirname(join(dir, stamp, k)), { recursive: true });
    writeFileSync(join(dir, stamp, k), v);
  }
  const old = existsSync(join(dir, "..data")) ? readlinkSync(join(dir, "..data")) : undefined;
  symlinkSync(stamp, join(dir, "..data_tmp"));
  renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  const tops = new Set(Object.keys(data).map((k) => k.split("/")[0]!));
  for (const top of tops) if (!existsSync(join(dir, top))) symlinkSync(join("..data", top), join(dir, top));
  // A key gone from the payload loses its link, as with the kubelet (a dangling one would still be
  // listed: a pipeline file the operator dropped would stay in the config directory).
  for (const name of readdirSync(dir))
    if (!name.startsWith("..") && !tops.has(name) && lstatSync(join(dir, name)).isSymbolicLink())
      unlinkSync(join(dir, name));
  if (old) rmSync(join(dir, old), { recursive: true, force: true });
}

export function startSyncer(
  kubectl: (args: string[]) => ChildProcess,
  namespace: string,
  name: string,
  dir: string,
  kind: "configmap" | "secret" = "configmap",
  /** The volume's `items` (key → path); without them every key is a file of its own name. */
  items?: Record<string, string>,
): Syncer {
  let swaps = 0;
  let lastWrite = { at: 0, ms: 0 };
  let last = "";
  const proc = kubectl(["get", kind, name, "-n", namespace, "--watch", "--output-watch-events", "-o", "json"]);
  onWatchEvents(proc, (ev) => {
    // A deleted object's volume keeps its last content; an emptied one is an empty directory.
    if (ev.type === "DELETED") return;
    ev.object.data ??= {};
    const text = JSON.stringify(ev.object.data);
    if (text === last) return;
    last = text;
    // A Secret's data is base64; the kubelet writes the decoded bytes.
    let data: Record<string, string | Buffer> =
      kind === "secret"
        ? Object.fromEntries(Object.entries(ev.object.data).map(([k, v]) => [k, Buffer.from(v, "base64")]))
        : ev.object.data;
    if (items)
      data = Object.fromEntries(
        Object.entries(items).flatMap(([k, path]) => (data[k] === undefined ? [] : [[path, data[k]]])),
      );
    const at = Date.now();
    writeAtomically(dir, data, ++swaps);
    lastWrite = { at, ms: Date.now() - at };
  });
  return { dir, swaps: () => swaps, lastWrite: () => lastWrite, stop: () => proc.kill() };
}

/**
 * A projected volume of several ConfigMaps (a sharded gateway's config: README, Large gateways):
 * the kubelet writes the union of their data with one `..data` swap, from whatever revision of
 * each it has seen, so shard k's new content may land beside shard j's old one. This does the
 * same: every event of any of them writes the union of the newest data of each.
 */
export function startProjectedSyncer(
  kubectl: (args: string[]) => ChildProcess,
  namespace: string,
  names: readonly string[],
  dir: string,
): Syncer {
  let swaps = 0;
  let lastWrite = { at: 0, ms: 0 };
  const latest = new Map<string, Record<string, string>>();
  const procs = names.map((name) => {
    const proc = kubectl(["get", "configmap", name, "-n", namespace, "--watch", "--output-watch-events", "-o", "json"]);
    onWatchEvents(proc, (ev) => {
      if (ev.type === "DELETED" || !ev.object.data) return;
      latest.set(name, ev.object.data);
      // The kubelet mounts a projected volume once every source exists.
      if (latest.size < names.length) return;
      const at = Date.now();
      writeAtomically(dir, Object.assign({}, ...names.map((n) => latest.get(n))) as Record<string, string>, ++swaps);
      lastWrite = { at, ms: Date.now() - at };
    });
    return proc;
  });
  return { dir, swaps: () => swaps, lastWrite: () => lastWrite, stop: () => procs.forEach((p) => p.kill()) };
}

/** `kubectl get --watch --output-watch-events -o json`'s events, one call each. */
function onWatchEvents(
  proc: ChildProcess,
  onEvent: (ev: { type: string; object: { data?: Record<string, string> } }) => void,
): void {
  let buf = "";
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    // `kubectl -o json --watch` prints one pretty JSON document per event; split on brace depth
    // outside strings.
    for (const ch of chunk) {
      buf += ch;
      if (inString) {
        if (escaped) escaped = false;
        else if (ch === "\\") escaped = true;
        else if (ch === '"') inString = false;
        continue;
      }
      if (ch === '"') inString = true;
      else if (ch === "{") {
        if (depth === 0) start = buf.length - 1;
        depth++;
      } else if (ch === "}") {
        depth--;
        if (depth === 0 && start >= 0) {
          const doc = buf.slice(start);
          buf = "";
          start = -1;
          onEvent(JSON.parse(doc) as { type: string; object: { data?: Record<string, string> } });
        }
      }
    }
  });
}
