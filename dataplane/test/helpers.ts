/**
 * Test helpers: run the real data plane binary on a config in a temp dir, real upstreams on
 * loopback, and small HTTP utilities. Nothing here fakes a component.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import {
  createServer,
  request,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerOptions,
} from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = join(ROOT, "dataplane/dist/cli.js");

const created: string[] = [];
// Each test file runs in its own process: its temp dirs go when it exits.
process.once("exit", () => {
  for (const d of created) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = "harmony-test-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  created.push(d);
  return d;
}

/** Writes `files` (relative path → content) under a new temp dir; returns the dir. */
export function writeTree(files: Record<string, string>, dir = tempDir()): string {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  return dir;
}

export interface LogLine {
  level: string;
  message: string;
  [k: string]: unknown;
}

export interface Dataplane {
  proc: ChildProcess;
  pid: number;
  /** Bound port per network name. */
  ports: Record<string, number>;
  logs: LogLine[];
  stderr: () => string;
  url(network: string, path: string): string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

/**
 * The V8 flags the data plane runs with in its image (docker/dataplane.Dockerfile sets them as
 * NODE_OPTIONS, the Makefile's `run` passes them): Node 24's larger young generation lets garbage
 * socket Buffers pile up between scavenges, +75 MiB of RSS while streaming 100 MiB; 2 MiB semi-spaces
 * bring it back to Node 20's level (README, "Behaviour worth knowing").
 */
export const DATAPLANE_NODE_FLAGS = ["--max-semi-space-size=2"];

export async function startDataplane(
  configFile: string,
  env: Record<string, string> = {},
  args: string[] = [],
  /** Time to start: a config of thousands of pipelines takes longer to build than the default allows. */
  startTimeoutMs = 15_000,
  /** Another build's cli.js (a benchmark's "before", bench/http-passthrough/build-base.sh). */
  cli = CLI,
): Promise<Dataplane> {
  const proc = spawn(process.execPath, [...DATAPLANE_NODE_FLAGS, cli, "--config", configFile, ...args], {
    env: { ...process.env, HARMONY_POLL_MS: "500", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: LogLine[] = [];
  let err = "";
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let buf = "";
  proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        parsed = { level: "raw", message: line };
      }
      logs.push(parsed);
      for (const w of [...waiters]) {
        if (w.pred(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  });
  proc.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
  const exited = once(proc, "exit");

  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 10_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const hit = logs.find(pred);
      if (hit) return resolve(hit);
      const t = setTimeout(
        () =>
          reject(
            new Error(
              `timed out waiting for a log line; stderr:\n${err}\nlogs:\n${logs.map((l) => JSON.stringify(l)).join("\n")}`,
            ),
          ),
        timeoutMs,
      );
      waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });

  // A data plane that never starts must not outlive the failure: a live child keeps the test file from exiting.
  const started = await Promise.race([
    waitForLog((l) => l.message === "harmony data plane started", startTimeoutMs),
    exited.then(([code]) => {
      throw new Error(`data plane exited with ${String(code)} before starting:\n${err}`);
    }),
  ]).catch((e: unknown) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    throw e;
  });
  const ports = started.ports as Record<string, number>;
  return {
    proc,
    pid: proc.pid!,
    ports,
    logs,
    stderr: () => err,
    url: (network, path) => `http://127.0.0.1:${ports[network]}${path}`,
    waitForLog,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** Runs the CLI to completion (for --check, --version, --help). */
export async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  proc.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const [code] = (await once(proc, "exit")) as [number | null];
  return { code, stdout, stderr };
}

export async function startUpstream(
  handler: RequestListener,
  options: ServerOptions = {},
): Promise<{ server: Server; port: number; url: string; close(): Promise<void> }> {
  const server = createServer(options, handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * The sections after `[proxy]` of a config on fixed ports, for tests that reload listeners onto
 * known ports: info log without access log, management on `mgmt`, `default` on `port`.
 */
export function fixedPortListeners(mgmt: number, port: number): string {
  return `[logging]
log_level = "info"
access_log = false
[management]
enabled = true
network = "management"
[network.management.http]
bind_address = "127.0.0.1"
bind_port = ${mgmt}
[network.default.http]
bind_address = "127.0.0.1"
bind_port = ${port}
`;
}

/** An echo pipeline named `name` at `prefix` on `networks` (TOML array items). */
export function echoPipeline(name: string, prefix: string, networks = '"default"'): string {
  return `[pipelines.${name}]
networks = [${networks}]
endpoints = ["${name}_in"]
backends = ["${name}_out"]
[endpoints.${name}_in]
service = "echo"
options = { path_prefix = "${prefix}" }
[backends.${name}_out]
service = "echo"
`;
}

/** Minimal config: management plus one network, both on ephemeral ports. Pipelines appended. */
export function baseConfig(extra = "", opts: { id?: string } = {}): string {
  return `[proxy]
id = "${opts.id ?? "test"}"
shutdown_timeout_ms = 5000

[logging]
log_level = "info"

[management]
enabled = true
network = "management"

[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0

[network.default.http]
bind_address = "127.0.0.1"
bind_port = 0
${extra}`;
}

/** An http pipeline named `name` at `prefix` forwarding to `upstream`. */
export function proxyPipeline(
  name: string,
  prefix: string,
  upstream: string,
  backendOptions = "",
  endpointOptions = "",
): string {
  return `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["passthru"]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "http"
[endpoints.${name}_in.options]
path_prefix = "${prefix}"
${endpointOptions}
[backends.${name}_out]
service = "http"
[backends.${name}_out.options]
base_url = "${upstream}"
${backendOptions}
`;
}

export interface HttpResult {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
  text: string;
  json: () => unknown;
}

/** One HTTP request with node:http (no pooling surprises), full body collected. */
export function http(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: false } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? "GET", headers: opts.headers, agent: opts.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        const text = body.toString("utf8");
        resolve({ status: res.statusCode!, headers: res.headers, body, text, json: () => JSON.parse(text) as unknown });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** Peak and current resident memory of a process, in bytes. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A seeded PRNG (mulberry32) in [0, 1): a generated corpus is the same on every run, so a failure reproduces. */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Ports this process has handed out: never the same one twice. */
const handedOut = new Set<number>();

/**
 * A port for a listener the test binds later. Taken below the kernel's ephemeral range
 * (32768–60999 on Linux by default): a port from listen(0) comes from that range, and on a busy
 * machine any outgoing connection (to an apiserver, etcd, an upstream) may take it as its source
 * port before the test binds it, which CI saw as EADDRINUSE. Random, so that test files running
 * side by side rarely pick the same one, and checked by binding it (a loopback port free right
 * now: nothing listens on it until someone binds it).
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** Runs every stop in reverse start order even when one fails; rethrows the first failure. */
export async function stopAll(stops: (() => unknown)[]): Promise<void> {
  let failure: { error: unknown } | undefined;
  for (const s of [...stops].reverse()) {
    try {
      await s();
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output; `input` goes to its stdin. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
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
