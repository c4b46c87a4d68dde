/** A peer process on loopback: its output kept for error messages, stopped by PID. */
import { spawn, type ChildProcess } from "node:child_process";
import { sleep } from "../../dataplane/test/helpers.js";

export interface Proc {
  proc: ChildProcess;
  log: () => string;
  stop(): Promise<void>;
}

export function run(cmd: string, args: string[], cwd?: string): Proc {
  const proc = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  proc.stdout.setEncoding("utf8").on("data", (c: string) => (log = (log + c).slice(-20_000)));
  proc.stderr.setEncoding("utf8").on("data", (c: string) => (log = (log + c).slice(-20_000)));
  proc.on("error", (e) => (log += `\nspawn failed: ${e.message}`));
  return {
    proc,
    log: () => log,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 8000);
      await exited;
      clearTimeout(t);
    },
  };
}

export async function waitFor(
  what: string,
  p: Proc,
  ok: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (p.proc.exitCode !== null) throw new Error(`${what} exited (${p.proc.exitCode}):\n${p.log()}`);
    if (await Promise.resolve(ok()).catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what} did not become ready:\n${p.log()}`);
}
