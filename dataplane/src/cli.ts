#!/usr/bin/env node
/** harmony-dataplane: run or check a Harmony TOML config. */
import cluster from "node:cluster";
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import type { GatewayOptions } from "./runtime/gateway.js";
import { parseConfigSource } from "./config/kube/uri.js";
import { createLogger } from "./observability/logger.js";
import { VERSION } from "./version.js";
import { groupSettings } from "./runtime/workers/count.js";
import type { GroupOptions } from "./runtime/workers/primary.js";

const HELP = `Usage: harmony-dataplane [--config <file>] [--config-source <uri>] [--check]

Runs the Harmony data plane on a Harmony TOML config (main file plus the *.toml files under
proxy.pipelines_path and proxy.transforms_path). The config is watched and hot-reloaded; SIGHUP
and POST /admin/reload reload it too. SIGTERM/SIGINT drain in-flight requests and exit. With
proxy.workers > 1 this process is the primary of that many workers: signals go to it.

Options:
  -c, --config <file>  Main config file (default: $HARMONY_CONFIG, else ./config/config.toml)
      --config-source kubernetes://<namespace>/<configmap>[?secret=<name>&secretDir=<dir>]
                       Also watch that ConfigMap (and read that Secret) through the Kubernetes
                       API: a change is served in about a second instead of the kubelet's sync.
                       Its keys stand for the files beside the main config file (the Secret's
                       for the files in secretDir); those files stay the source at start and
                       while the API is unreachable. In-cluster credentials unless --kubeconfig.
      --kubeconfig <file>  Credentials for --config-source outside a cluster
      --check          Validate the config, print every problem, exit 1 if any is an error
  -v, --version        Print the version
  -h, --help           Print this help

Environment:
  HARMONY_CONFIG       Config file when --config is not given
  HARMONY_LOG_LEVEL    Overrides the configured log level at start-up
  HARMONY_POLL_MS      Config poll interval in ms (default 2000; 0 disables polling)
  HARMONY_WATCH        0 disables watching the config files (SIGHUP and the API still reload)
`;

function out(s: string): void {
  process.stdout.write(s + "\n");
}
function err(s: string): void {
  process.stderr.write(s + "\n");
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        config: { type: "string", short: "c" },
        check: { type: "boolean" },
        "config-source": { type: "string" },
        kubeconfig: { type: "string" },
        version: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (e) {
    err(`harmony-dataplane: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args.help) {
    out(HELP);
    return 0;
  }
  if (args.version) {
    out(`harmony-dataplane ${VERSION}`);
    return 0;
  }
  const configFile = args.config ?? process.env.HARMONY_CONFIG ?? "config/config.toml";
  if (args.check) return check(configFile);
  let kubeSource: GatewayOptions["kubeSource"];
  if (args["config-source"]) {
    try {
      kubeSource = {
        spec: parseConfigSource(args["config-source"]),
        ...(args.kubeconfig ? { kubeconfig: args.kubeconfig } : {}),
      };
    } catch (e) {
      err(`harmony-dataplane: ${(e as Error).message}`);
      return 2;
    }
  }

  const logger = createLogger(process.env.HARMONY_LOG_LEVEL ?? "info");
  const pollMs = process.env.HARMONY_POLL_MS ? Number(process.env.HARMONY_POLL_MS) : 2000;
  // A group's primary (proxy.workers > 1) serves nothing: it never loads the plugins, the pipeline
  // or the gateway (about 70 MiB of RSS), only what watching and supervising need.
  const settings = cluster.isWorker ? undefined : groupSettings(configFile);
  if (settings && settings.workers > 1) {
    return runGroup(logger, {
      configFile,
      workers: settings.workers,
      shutdownTimeoutMs: settings.shutdownTimeoutMs,
      logger,
      pollMs,
      watch: process.env.HARMONY_WATCH !== "0",
      ...(kubeSource ? { kubeSource } : {}),
    });
  }
  const { createRegistry } = await import("./plugins/registry.js");
  const { Metrics } = await import("./observability/metrics.js");
  const registry = createRegistry();
  const metrics = new Metrics();
  if (cluster.isWorker) {
    const { runWorker } = await import("./runtime/workers/worker.js");
    return runWorker({ configFile, registry, logger, metrics, version: VERSION, pollMs });
  }
  const { Gateway } = await import("./runtime/gateway.js");
  const gateway = new Gateway({
    configFile,
    registry,
    logger,
    metrics,
    version: VERSION,
    pollMs,
    watch: process.env.HARMONY_WATCH !== "0",
    ...(kubeSource ? { kubeSource } : {}),
  });
  try {
    await gateway.start();
  } catch (e) {
    err(`harmony-dataplane: ${(e as Error).message}`);
    await gateway.shutdown();
    return 1;
  }
  logger.info("harmony data plane started", {
    version: VERSION,
    config: resolve(configFile),
    ports: gateway.boundPorts(),
  });

  return serveUntilSignalled(logger, gateway);
}

/** proxy.workers > 1: this process is the group's primary (runtime/workers/primary.ts). */
async function runGroup(logger: ReturnType<typeof createLogger>, opts: GroupOptions) {
  logger.defaultMeta = { ...(logger.defaultMeta as object), worker: "primary" };
  const { WorkerGroup } = await import("./runtime/workers/primary.js");
  const group = new WorkerGroup(opts);
  let ports: Record<string, number>;
  try {
    ports = await group.start();
  } catch (e) {
    err(`harmony-dataplane: ${(e as Error).message}`);
    await group.shutdown();
    return 1;
  }
  logger.info("harmony data plane started", {
    version: VERSION,
    config: resolve(opts.configFile),
    ports,
    workers: opts.workers,
    pids: group.pids(),
  });
  return serveUntilSignalled(logger, group);
}

/** SIGHUP reloads; the first SIGTERM or SIGINT drains and resolves the exit code. */
function serveUntilSignalled(
  logger: ReturnType<typeof createLogger>,
  target: { reload(trigger: string): Promise<unknown>; shutdown(): Promise<unknown> },
): Promise<number> {
  process.on("SIGHUP", () => void target.reload("sighup"));
  return new Promise<number>((done) => {
    let signalled = false;
    const stop = (signal: string) => {
      if (signalled) return;
      signalled = true;
      logger.info("draining", { signal });
      void target.shutdown().then(() => {
        logger.info("stopped");
        done(0);
      });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

async function check(configFile: string): Promise<number> {
  const { checkConfig } = await import("./check.js");
  const { formatProblem } = await import("./config/problems.js");
  const r = checkConfig(configFile);
  for (const p of r.problems) err(formatProblem(p));
  const errors = r.problems.filter((p) => p.severity === "error").length;
  const warnings = r.problems.length - errors;
  if (!r.ok) {
    err(`${configFile}: invalid (${errors} error(s), ${warnings} warning(s))`);
    return 1;
  }
  out(
    `${configFile}: ok (${r.files} file(s), ${r.pipelines.length} pipeline(s), ${warnings} warning(s), hash ${r.hash.slice(0, 12)})`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    err(`harmony-dataplane: fatal: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
