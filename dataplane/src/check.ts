/**
 * Validates a config without serving it: everything a start-up would check, nothing bound. Used by
 * `--check` and by the operator, which validates each render with exactly this before writing it.
 */
import { loadConfig, diskFs, type ConfigFs } from "./config/load.js";
import { resolveConfig } from "./config/resolve.js";
import { sortProblems, type Problem } from "./config/problems.js";
import { compileGeneration } from "./pipeline/compile.js";
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
}

export function checkConfig(mainFile: string, opts: CheckOptions = {}): CheckResult {
  const loaded = loadConfig(mainFile, opts.fs ?? diskFs);
  const resources = new SharedResources();
  const buildCtx = buildContextFactory(loaded, createLogger("error"), resources, opts.readFile ?? readFromDisk);
  const registry = opts.registry ?? createRegistry();
  const resolved = resolveConfig(loaded, registry, buildCtx, opts.env);
  const all = [...resolved.problems];
  if (resolved.config) {
    all.push(...compileGeneration(resolved.config, buildCtx, new Metrics({ process: false }), loaded.locate).problems);
  }
  void resources.closeAll(); // pools created while compiling have never connected
  const problems = sortProblems(all, loaded.mainFile);
  return {
    ok: !problems.some((p) => p.severity === "error"),
    problems,
    hash: loaded.hash,
    files: loaded.sources.length,
    pipelines: resolved.config?.pipelines.map((p) => p.name) ?? [],
  };
}
