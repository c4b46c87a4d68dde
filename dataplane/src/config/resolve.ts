/**
 * Turns a loaded document into the model the runtime uses (resolve/model.ts), checking everything
 * that can be checked without opening a socket: schema, references, plugin options, route and port
 * clashes. Each section is resolved by its own module under resolve/; they run in the order below,
 * which is the order their problems are reported in, and each later one builds on what the earlier
 * ones resolved (listeners → management and ports; entries → pipelines).
 */
import type { HarmonyConfig } from "./schema.js";
import { checkConfigSchema } from "./schema-check.js";
import type { Problem } from "./problems.js";
import { notUsed } from "./not-used.js";
import type { LoadedConfig } from "./load.js";
import type { Registry } from "../plugins/registry.js";
import type { ResolvedConfig } from "./resolve/model.js";
import { problemReporter, type BuildCtxFactory } from "./resolve/report.js";
import { resolveSettings } from "./resolve/settings.js";
import { resolveListeners } from "./resolve/listeners.js";
import { resolveManagement } from "./resolve/management.js";
import { checkRegistrations } from "./resolve/registrations.js";
import { pluginResolver } from "./resolve/plugin.js";
import { resolveEntries } from "./resolve/entries.js";
import { resolvePipelines } from "./resolve/pipelines.js";
import { withoutRefused } from "./resolve/prune.js";

export type { ListenerSpec, ResolvedConfig, ResolvedPipeline, ResolvedPlugin } from "./resolve/model.js";
export { DEFAULT_BODY_LIMIT } from "./resolve/settings.js";

export function resolveConfig(
  loaded: LoadedConfig,
  registry: Registry,
  buildCtx: BuildCtxFactory,
  env: NodeJS.ProcessEnv = process.env,
): {
  config: ResolvedConfig | undefined;
  problems: Problem[];
  /** Ports endpoints listen on by themselves (DIMSE), as bound here: for a check across files. */
  ownPorts: { endpoint: string; port: number }[];
} {
  const { problems, at } = problemReporter(loaded);
  if (problems.some((p) => p.severity === "error" && p.path === "")) {
    return { config: undefined, problems, ownPorts: [] }; // Syntax errors: nothing below would be meaningful.
  }

  const issues = checkConfigSchema(loaded.raw);
  for (const issue of issues) at(issue.path, issue.message, issue.unknownKey ? "warning" : "error");
  const doc = withoutRefused(loaded.raw, issues) as HarmonyConfig;
  for (const n of notUsed(doc)) at(n.path, n.message, "warning");

  const settings = resolveSettings(doc, at);
  const { harmonyNetworks, networks, bound } = resolveListeners(doc, buildCtx, at);
  const management = resolveManagement(doc, networks, buildCtx, env, at);
  checkRegistrations(doc, registry, at);
  const plugins = pluginResolver(buildCtx, at);
  const { endpoints, backends, middleware, ownPorts } = resolveEntries(doc, registry, plugins, bound, at);
  const pipelines = resolvePipelines({ doc, registry, plugins, at, networks, endpoints, backends, middleware });

  const config: ResolvedConfig = {
    ...settings,
    management,
    networks,
    harmonyNetworks,
    pipelines,
    endpoints,
    backends,
    middleware,
    document: doc,
  };
  return { config, problems, ownPorts };
}
