/**
 * A real single-node Kubernetes cluster for tests: containerd, kubelet, kube-proxy, CoreDNS and a
 * control plane on a bridge of its own (test/cluster/node.sh does the host work; this module owns its
 * lifetime). One per machine, root only.
 *
 *   const c = await startCluster({ images: await buildImages() });
 *   await c.kubectl(["get", "nodes"]);
 *   await c.stop();
 *
 * Teardown (node.sh down) also runs when the test process exits or is interrupted without stop(), and
 * the next start removes what a killed owner left. HARMONY_NODE_KEEP=1 leaves the cluster running
 * after stop() (remove it with `bash test/cluster/node.sh down`).
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run as runCommand } from "../../dataplane/test/helpers.js";

const NODE_SH = fileURLToPath(new URL("./node.sh", import.meta.url));

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cluster {
  kubeconfig: string;
  /** https://<node IP>:<port> */
  server: string;
  /** The bridge IP: the node's InternalIP, where NodePorts and the kubelet listen. */
  nodeIP: string;
  /** State dir: logs/<process>.log, kubeconfig, configs. */
  dir: string;
  /** process.env with the cluster's bin dir first on PATH and KUBECONFIG set. */
  env: NodeJS.ProcessEnv;
  /** kubectl ...args; never rejects on a non-zero exit. */
  kubectl(args: string[], input?: string): Promise<CommandResult>;
  /** kubectl ...args; throws with stderr on a non-zero exit, resolves to stdout. */
  kubectlOk(args: string[], input?: string): Promise<string>;
  helm(args: string[]): Promise<CommandResult>;
  /** Deletes every pod while the kubelet runs, stops everything and restores the host. Idempotent. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Image archives (OCI or docker-save tars) imported into containerd before the kubelet starts. */
  images?: string[];
}

const downSync = () => {
  try {
    execFileSync("bash", [NODE_SH, "down"], { stdio: ["ignore", "ignore", "inherit"] });
  } catch {
    // reported by node.sh on stderr; nothing more to do while exiting
  }
};

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const dir = await new Promise<string>((resolve, reject) => {
    // node.sh's progress goes to our stderr; the state dir is its only stdout line.
    const p = spawn("bash", [NODE_SH, "up", String(process.pid), ...(opts.images ?? [])], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    p.on("error", reject);
    p.on("close", (code) => {
      const d = out.trim().split("\n").pop() ?? "";
      if (code === 0 && d) resolve(d);
      else reject(new Error(`bash ${NODE_SH} up failed (exit ${code}); see its output above`));
    });
  });
  const vars = readEnv(join(dir, "env"));
  const keep = process.env.HARMONY_NODE_KEEP === "1";
  const onExit = () => {
    if (!keep) downSync();
  };
  const onSignal = (sig: NodeJS.Signals) => {
    onExit();
    process.off(sig, onSignal);
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  process.on("exit", onExit);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${vars.BIN}:${process.env.PATH ?? ""}`,
    KUBECONFIG: vars.KUBECONFIG,
  };
  const kubectl = (args: string[], input?: string) => runCommand(vars.KUBECTL, args, { env, input });
  let stopped = false;
  return {
    kubeconfig: vars.KUBECONFIG,
    server: vars.SERVER,
    nodeIP: vars.NODE_IP,
    dir,
    env,
    kubectl,
    async kubectlOk(args, input) {
      const r = await kubectl(args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
    helm: (args) => runCommand(join(vars.BIN, "helm"), args, { env }),
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off("exit", onExit);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (keep) {
        process.stderr.write(`[cluster] kept running: ${dir} (bash ${NODE_SH} down removes it)\n`);
        return;
      }
      const r = await runCommand("bash", [NODE_SH, "down"], {});
      if (r.code !== 0) throw new Error(`node.sh down failed (${r.code}): ${r.stderr}`);
    },
  };
}

/** node.sh's KEY=VALUE file, every key present. */
function readEnv(file: string): Record<"KUBECONFIG" | "SERVER" | "NODE_IP" | "BIN" | "KUBECTL", string> {
  const lines = readFileSync(file, "utf8").trim().split("\n");
  const get = (k: string) => {
    const line = lines.find((l) => l.startsWith(`${k}=`));
    if (!line) throw new Error(`${file} has no ${k}`);
    return line.slice(k.length + 1);
  };
  return {
    KUBECONFIG: get("KUBECONFIG"),
    SERVER: get("SERVER"),
    NODE_IP: get("NODE_IP"),
    BIN: get("BIN"),
    KUBECTL: get("KUBECTL"),
  };
}
