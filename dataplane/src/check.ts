/**
 * Validates a config without serving it: everything a start-up would check, nothing bound. Used by
 * `--check` and by the operator, which validates each render with exactly this before writing it
 * (through check-incremental.ts, which runs it on one file at a time and keeps the results).
 */
import type { Logger } from "winston";
import { loadConfig, diskFs, type ConfigFs, type LoadedConfig } from "./config/load.js";
import { resolveConfig } from "./config/resolve.js";
import { sortProblems, type Problem } from "./config/problems.js";
import { compileGeneration, type RouteClaim } from "./pipeline/compile.js";
import { SharedResources } from "./runtime/resources.js";
import { createRegistry, type Registry } from "./plugins/registry.js";
import { createLogger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";
import { buildContextFactory, readFromDisk, type FileReader } from "./build-context.js";

export interface CheckResult {
  ok: boolean;
  problems: Problem[];
  /** The hash the data plane reports for this config once loaded (/admin/info, harmony_config_info). */
  hash: string;
  files: number;
  pipelines: string[];
}

export interface CheckOptions {
  fs?: ConfigFs;
  readFile?: FileReader;
  registry?: Registry;
  env?: NodeJS.ProcessEnv;
  /** For what plugins log while they are built (error level); one is made per check without it. */
  logger?: Logger;
}

/** A check's result with what a check across files needs: the routes and ports it saw taken. */
export interface CheckParts {
  loaded: LoadedConfig;
  /** Unsorted. */
  problems: Problem[];
  pipelines: string[];
  claims: RouteClaim[];
  ownPorts: { endpoint: string; port: number }[];
  /** proxy.path_normalization.case_insensitive: how route tables compare prefixes. */
  caseInsensitive: boolean;
}

export function checkConfig(mainFile: string, opts: CheckOptions = {}): CheckResult {
  const r = checkParts(mainFile, opts);
  const problems = sortProblems(r.problems, r.loaded.mainFile);
  return {
    ok: !problems.some((p) => p.severity === "error"),
    problems,
    hash: r.loaded.hash,
    files: r.loaded.sources.length,
    pipelines: r.pipelines,
  };
}

export function checkParts(mainFile: string, opts: CheckOptions = {}): CheckParts {
  const loaded = loadConfig(mainFile, opts.fs ?? diskFs);
  const resources = new SharedResources();
  const logger = opts.logger ?? createLogger("error");
  const buildCtx = buildContextFactory(loaded, logger, resources, opts.readFile ?? readFromDisk);
  const registry = opts.registry ?? createRegistry();
  const resolved = resolveConfig(loaded, registry, buildCtx, opts.env);
  const all = [...resolved.problems];
  const claims: RouteClaim[] = [];
  if (resolved.config) {
    all.push(
      ...compileGeneration(resolved.config, buildCtx, new Metrics({ process: false }), loaded.locate, claims).problems,
    );
  }
  void resources.closeAll(); // pools created while compiling have never connected
  return {
    loaded,
    problems: all,
    pipelines: resolved.config?.pipelines.map((p) => p.name) ?? [],
    claims,
    ownPorts: resolved.ownPorts,
    caseInsensitive: resolved.config?.pathNormalization.caseInsensitive ?? false,
  };
}
