/**
 * One plugin instance (an endpoint, backend or middleware entry) made ready to build: its type
 * looked up, its options checked against the plugin's schema and by the plugin's own check, every
 * problem reported under the entry's key. A type that Harmony documents but this build lacks is
 * remembered, so pipelines using it are left out with a warning instead of failing the config.
 */
import type { Registry } from "../../plugins/registry.js";
import type { AnyPlugin, EndpointPlugin, OptionProblem } from "../../plugins/types.js";
import { checkOptions } from "../schema-check.js";
import type { ResolvedPlugin } from "./model.js";
import type { BuildCtxFactory, KeyPath, Report } from "./report.js";

/** Types the Harmony format documents; named in errors so "not built yet" reads differently from a typo. */
const HARMONY_MIDDLEWARE_TYPES = new Set([
  "jwtauth",
  "jwt_auth",
  "basic_auth",
  "api_key",
  "policies",
  "path_filter",
  "transform",
  "metadata_transform",
  "json_extractor",
  "json",
  "log_dump",
  "webhook",
  "dicomweb_bridge",
  "dicomweb",
  "dicom_flatten",
  "dicom_unflatten",
  "jmix_builder",
  "connect",
  "mesh_auth",
  "cookie_auth",
]);

/** Service types the Harmony docs describe; one missing here is "not available", not a typo. */
const HARMONY_SERVICE_TYPES = new Set([
  "http",
  "echo",
  "fhir",
  "jmix",
  "dicomweb",
  "dicom",
  "dicom_scp",
  "dicom_scu",
  "management",
  "mock_dicom",
  "storage",
  "http3",
  "jmix_backend",
]);

/** A bare middleware name that Harmony documents as a type (0.4 compatibility). */
export const isHarmonyMiddlewareType = (name: string): boolean => HARMONY_MIDDLEWARE_TYPES.has(name.toLowerCase());

/** The endpoint plugin of `service` when it listens on a port of its own (DIMSE), else undefined. */
export function ownListener(registry: Registry, service: string | undefined): EndpointPlugin | undefined {
  const plugin = service ? registry.endpoint(service) : undefined;
  return plugin?.ownListener ? plugin : undefined;
}

export type PluginRole = "endpoint service" | "backend service" | "middleware type";

export interface PluginResolver {
  /**
   * The instance at `path` (`[table, name]`, or a pipeline's mesh entry), or undefined when it
   * cannot be built (each reason reported).
   */
  resolve(
    path: KeyPath,
    name: string,
    type: string | undefined,
    rawOptions: Record<string, unknown> | undefined,
    plugin: AnyPlugin | undefined,
    what: PluginRole,
    available: string[],
  ): ResolvedPlugin | undefined;
  /** Whether `[table.name]` names a type Harmony documents but this build lacks (already warned about). */
  isUnavailable(table: string, name: string): boolean;
}

export function pluginResolver(buildCtx: BuildCtxFactory, at: Report): PluginResolver {
  /** `table\0name` of entries whose type Harmony documents but this build lacks. */
  const unavailable = new Set<string>();
  return {
    isUnavailable: (table, name) => unavailable.has(`${table}\0${name}`),
    resolve(path, name, type, rawOptions, plugin, what, available) {
      if (typeof type !== "string") return undefined; // Already reported by the schema.
      const documented = (what === "middleware type" ? HARMONY_MIDDLEWARE_TYPES : HARMONY_SERVICE_TYPES).has(
        type.toLowerCase(),
      );
      if (!plugin && documented) {
        // A Harmony feature this build lacks: the config still loads (make check passes), and what
        // depends on it is left out, loudly. Never served half-built: see pipelines.ts.
        unavailable.add(`${String(path[0])}\0${name}`);
        at(
          [...path, what === "middleware type" ? "type" : "service"],
          `${what} "${type}" is not available in this build; pipelines using "${name}" are not served`,
          "warning",
        );
        return undefined;
      }
      if (!plugin) {
        at(
          [...path, what === "middleware type" ? "type" : "service"],
          `unknown ${what} "${type}" (available: ${available.join(", ")})`,
        );
        return undefined;
      }
      const options = structuredClone(rawOptions ?? {});
      let ok = true;
      for (const issue of checkOptions(plugin.options, options)) {
        at([...path, "options", ...issue.path], issue.message, issue.unknownKey ? "warning" : "error");
        if (!issue.unknownKey) ok = false;
      }
      if (plugin.check) {
        // Run even after schema errors so every problem shows in one pass; a check that trips over
        // a wrongly typed option has nothing to add to the schema's message.
        let found: OptionProblem[] = [];
        try {
          found = plugin.check(options, buildCtx(name));
        } catch {
          found = [];
        }
        for (const p of found) {
          at([...path, "options", ...p.path], p.message, p.severity ?? "error");
          if ((p.severity ?? "error") === "error") ok = false;
        }
      }
      return ok ? { name, plugin, options } : undefined;
    },
  };
}
