/**
 * What a failed conformance test leaves behind for whoever reads CI's output: a directory with the
 * suite's timestamped output, and per snapshot the Gateway API objects and their status, the
 * Services and EndpointSlices, events, every pod's log files as the kubelet wrote them (data plane
 * and operator, previous containers too), each gateway pod's /readyz, the node's kube-proxy and
 * kubelet logs and kube-proxy's NAT rules. Secrets are listed by name only, never their data.
 *
 * Cheap when green: only the suite's output is written (a file append per line) and the directory
 * is removed when every test passed. A snapshot is taken as soon as the suite reports a test
 * failed (the cluster as the failure left it, before later tests change it) and once more at the
 * end, before the node goes down.
 */
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { execFile } from "node:child_process";
import type { Cluster } from "../cluster/cluster.js";

/** The kubelet's default podLogsDir: <namespace>_<pod>_<uid>/<container>/<restart>.log. */
const POD_LOGS = "/var/log/pods";
const GATEWAY_POD_LABEL = "harmony.runbeam.io/k8s-gateway";

export interface Diagnostics {
  dir: string;
  /** One line of the suite's output; a `--- FAIL:` line for a new test starts a snapshot. */
  line(text: string): void;
  /** Every snapshot started so far has been written. */
  settled(): Promise<void>;
  /** A snapshot now (e.g. "end"), after any already running. */
  snapshot(label: string): Promise<void>;
  /** Nothing failed: remove the directory. */
  discard(): void;
  /** The last snapshot's warnings and errors from the pods' logs (at most `max` lines), for CI's output. */
  problems(max: number): string;
}

export function diagnostics(cluster: Cluster, dir: string): Diagnostics {
  mkdirSync(dir, { recursive: true });
  const suiteLog = join(dir, "suite.log");
  const failed = new Set<string>();
  let chain: Promise<void> = Promise.resolve();
  let n = 0;
  let last: string | undefined;
  const snapshot = (label: string) => {
    const target = join(dir, `${String(++n).padStart(2, "0")}-${label.replace(/[^A-Za-z0-9_.-]/g, "_")}`);
    last = target;
    chain = chain.then(() => capture(cluster, target)).catch((e: unknown) => note(target, e));
    return chain;
  };
  return {
    dir,
    line(text) {
      appendFileSync(suiteLog, `${new Date().toISOString()} ${text}\n`);
      // `--- FAIL: TestConformance/<Test>[/<subtest>] (12.3s)`: one snapshot per failed test.
      const m = /--- FAIL: TestConformance\/([^/\s]+)/.exec(text);
      if (m && !failed.has(m[1]!)) {
        failed.add(m[1]!);
        void snapshot(m[1]!);
      }
    },
    settled: () => chain,
    snapshot,
    discard: () => rmSync(dir, { recursive: true, force: true }),
    problems: (max) => (last ? podLogProblems(join(last, "pod-logs"), max) : ""),
  };
}

/** Lines at warn or error level from the harmony pods' logs (data planes and operator), the newest last. */
function podLogProblems(root: string, max: number): string {
  if (!existsSync(root)) return "";
  const out: string[] = [];
  for (const f of readdirSync(root, { recursive: true, encoding: "utf8" })) {
    if (!f.endsWith(".log")) continue;
    const pod = f.split("/")[0]!;
    for (const line of readFileSync(join(root, f), "utf8").split("\n")) {
      if (/"level":"(warn|error)"/.test(line)) out.push(`${pod}: ${line}`);
    }
  }
  // The kubelet's lines start with an RFC 3339 timestamp: sort by it across files.
  const at = (l: string) => l.slice(l.indexOf(": ") + 2, l.indexOf(": ") + 32);
  return out
    .sort((a, b) => at(a).localeCompare(at(b)))
    .slice(-max)
    .join("\n");
}

function note(dir: string, e: unknown): void {
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, "capture-errors.txt"), `${(e as Error).stack ?? String(e)}\n`);
}

async function capture(cluster: Cluster, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const save = async (file: string, args: string[]) => {
    const r = await cluster.kubectl(["--request-timeout=20s", ...args]);
    writeFileSync(join(dir, file), r.stdout + (r.code === 0 ? "" : `\n# kubectl exit ${r.code}: ${r.stderr}`));
  };
  await Promise.all([
    save("gateway-api.yaml", ["get", "gatewayclasses,gateways,httproutes,referencegrants", "-A", "-o", "yaml"]),
    save("services-endpoints.yaml", ["get", "services,endpointslices", "-A", "-o", "yaml"]),
    save("overview.txt", ["get", "pods,services,endpointslices,deployments,gateways,httproutes", "-A", "-o", "wide"]),
    save("events.txt", ["get", "events", "-A", "--sort-by=.lastTimestamp"]),
    // Names and types only: a Secret's data never goes into CI's artifacts.
    save("secrets.txt", ["get", "secrets", "-A"]),
    save("gateway-configmaps.yaml", ["get", "configmaps", "-A", "-l", GATEWAY_POD_LABEL, "-o", "yaml"]),
  ]);
  // Every container's log as the kubelet keeps it (restarted containers' earlier logs included).
  if (existsSync(POD_LOGS)) cpSync(POD_LOGS, join(dir, "pod-logs"), { recursive: true, dereference: true });
  writeFileSync(join(dir, "gateway-pods-readyz.txt"), await readyz(cluster));
  for (const p of ["kube-proxy", "kubelet"]) {
    writeFileSync(join(dir, `${p}.log`), await sh("tail", ["-n", "3000", join(cluster.dir, "logs", `${p}.log`)]));
  }
  writeFileSync(join(dir, "iptables-nat.txt"), await sh("iptables-save", ["-t", "nat"]));
}

/**
 * Each gateway pod's /readyz from the host (pod IPs are reachable on the bridge): status and body.
 * The suite's Gateways keep the default management port, 9090.
 */
async function readyz(cluster: Cluster): Promise<string> {
  const r = await cluster.kubectl([
    "get",
    "pods",
    "-A",
    "-l",
    GATEWAY_POD_LABEL,
    "-o",
    'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.podIP}{"\\n"}{end}',
  ]);
  const out: string[] = [];
  for (const line of r.stdout.trim().split("\n").filter(Boolean)) {
    const [pod, ip] = line.split(" ");
    if (!ip) {
      out.push(`${pod}: no pod IP`);
      continue;
    }
    try {
      const res = await fetch(`http://${ip}:9090/readyz`, { signal: AbortSignal.timeout(3000) });
      out.push(`${pod} ${ip}: ${res.status} ${await res.text()}`);
    } catch (e) {
      out.push(`${pod} ${ip}: ${(e as Error).message}`);
    }
  }
  return out.join("\n") + "\n";
}

function sh(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) =>
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve(stdout + (err ? `\n# ${cmd} failed: ${err.message}\n${stderr}` : "")),
    ),
  );
}
