/** The 0.4 registration tables `[services.*]` and `[middleware_types.*]`: harmless unless they ask for what cannot load. */
import type { HarmonyConfig } from "../schema.js";
import type { Registry } from "../../plugins/registry.js";
import type { Report } from "./report.js";

export function checkRegistrations(doc: HarmonyConfig, registry: Registry, at: Report): void {
  for (const [table, known] of [
    ["services", (t: string) => registry.endpoint(t) ?? registry.backend(t)],
    ["middleware_types", (t: string) => registry.middleware(t)],
  ] as const) {
    for (const [type, reg] of Object.entries(doc[table] ?? {})) {
      if (reg.module)
        at([table, type, "module"], 'dynamic modules are not supported; use a built-in type (module = "")');
      else if (!known(type) && type !== "management")
        at([table, type], `"${type}" is not available in this build; registration ignored`, "warning");
    }
  }
}
