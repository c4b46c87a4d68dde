/**
 * What the operator tests against a real kube-apiserver share: kubectl that fails loudly, a
 * server-side apply of several objects at once, and the operator binary started on its own.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { ControlPlane } from "./controlplane/controlplane.js";
import { ROOT } from "../dataplane/test/helpers.js";

/** `kubectl ...args` against `cp`: its stdout, or an error with its stderr on a non-zero exit. */
export async function kubectlOk(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Server-side apply (conflicts forced) of `items` as one List. */
export function applyList(cp: ControlPlane, items: object[]): Promise<string> {
  return kubectlOk(
    cp,
    ["apply", "--server-side", "--force-conflicts", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "List", items }),
  );
}

/**
 * operator/dist/main.js against `kubeconfig`: no leader election, health on an ephemeral port,
 * info log, then `extra` flags. Its stdout and stderr go to `onLog`.
 */
export function spawnOperator(kubeconfig: string, extra: string[], onLog: (chunk: string) => void): ChildProcess {
  const operator = spawn(
    process.execPath,
    [
      join(ROOT, "operator/dist/main.js"),
      "--kubeconfig",
      kubeconfig,
      "--leader-elect",
      "false",
      "--health-port",
      "0",
      "--log-level",
      "info",
      ...extra,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout.setEncoding("utf8").on("data", onLog);
  operator.stderr.setEncoding("utf8").on("data", onLog);
  return operator;
}
