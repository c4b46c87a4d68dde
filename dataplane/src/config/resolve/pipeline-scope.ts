/**
 * What resolving one pipeline works with: the document, the entries resolved before it, and the
 * pipeline's verdict so far (served or not, and what it uses that this build lacks).
 */
import type { HarmonyConfig } from "../schema.js";
import type { Registry } from "../../plugins/registry.js";
import type { ListenerSpec, ResolvedPlugin } from "./model.js";
import type { PluginResolver } from "./plugin.js";
import type { KeyPath, Report } from "./report.js";

export interface PipelineScope {
  doc: HarmonyConfig;
  registry: Registry;
  plugins: PluginResolver;
  at: Report;
  networks: ReadonlyMap<string, ListenerSpec | undefined>;
  endpoints: ReadonlyMap<string, ResolvedPlugin>;
  backends: ReadonlyMap<string, ResolvedPlugin>;
  /** Pipelines add to it: bare type names (0.4) and mesh instances are built on first use. */
  middleware: Map<string, ResolvedPlugin>;
}

export interface Verdict {
  /** False once an error of this pipeline is reported: it is not served. */
  ok: boolean;
  /** What this pipeline needs that this build does not have (each already warned about). */
  missing: string[];
  /** An error on a key of this pipeline (`sub` below `pipelines.<name>`). */
  err(sub: KeyPath, message: string): void;
  /** An entry the pipeline names did not resolve: lacking in this build, or broken (reported on the entry). */
  failed(table: string, name: string): void;
}

export function verdict(scope: PipelineScope, path: KeyPath): Verdict {
  const v: Verdict = {
    ok: true,
    missing: [],
    err(sub, message) {
      scope.at([...path, ...sub], message);
      v.ok = false;
    },
    failed(table, name) {
      if (scope.plugins.isUnavailable(table, name)) v.missing.push(name);
      else v.ok = false; // its own problem is already reported
    },
  };
  return v;
}
