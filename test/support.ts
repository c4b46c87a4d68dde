/** Small helpers the cross-package tests share: polling for a condition and running a command. */
import { spawn } from "node:child_process";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output; `input` goes to its stdin. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    p.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.on("error", () => undefined); // the command may exit before reading its input
    p.stdin.end(opts.input ?? "");
  });
}

/**
 * Polls `fn` until it returns something other than undefined or false, and returns that. On
 * timeout the error names what was awaited, the last error `fn` threw, and `context()` (a log
 * tail, say) so a failing run explains itself.
 */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number; context?: () => string } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
  const why = last === undefined ? "" : `: ${last instanceof Error ? last.message : JSON.stringify(last)}`;
  const context = opts.context?.();
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${context ? `\n${context}` : ""}`);
}
