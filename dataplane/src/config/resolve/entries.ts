/**
 * `[endpoints.*]`, `[backends.*]` and `[middleware.*]`: each entry's options with its references
 * filled in (references.ts), built into a ResolvedPlugin; the ports that endpoints with listeners
 * of their own (DIMSE) take, in the same port space as the networks' listeners.
 */
import type { HarmonyConfig } from "../schema.js";
import type { Registry } from "../../plugins/registry.js";
import type { AnyPlugin } from "../../plugins/types.js";
import { idleTcpConfigs, resolveReferences } from "../references.js";
import type { ResolvedPlugin } from "./model.js";
import { ownListener, type PluginResolver, type PluginRole } from "./plugin.js";
import type { Report } from "./report.js";

export interface Entries {
  endpoints: Map<string, ResolvedPlugin>;
  backends: Map<string, ResolvedPlugin>;
  /** Instances of `[middleware.*]`; pipelines add bare type names and mesh instances to it. */
  middleware: Map<string, ResolvedPlugin>;
  /** Ports endpoints listen on by themselves (DIMSE), as bound here: for a check across files. */
  ownPorts: { endpoint: string; port: number }[];
}

export function resolveEntries(
  doc: HarmonyConfig,
  registry: Registry,
  plugins: PluginResolver,
  bound: Map<number, string>,
  at: Report,
): Entries {
  const isOwnListener = (service: string | undefined) => ownListener(registry, service) !== undefined;
  // target_ref, targets, peer_ref and tcp_config filled into each entry's options (references.ts).
  const refs = resolveReferences(doc, registry, isOwnListener);
  for (const p of refs.problems) at(p.path, p.message, p.severity);

  const resolveTable = (
    table: "endpoints" | "backends",
    find: (t: string) => AnyPlugin | undefined,
    what: PluginRole,
  ): Map<string, ResolvedPlugin> => {
    const out = new Map<string, ResolvedPlugin>();
    const available = registry.serviceTypes().filter((t) => find(t));
    for (const [name, entry] of Object.entries(doc[table] ?? {})) {
      const key = `${table}\0${name}`;
      if (refs.broken.has(key)) continue; // its reference is reported; "base_url is required" would only repeat it
      const options = refs.options.get(key) ?? entry.options;
      const r = plugins.resolve([table, name], name, entry.service, options, find(entry.service), what, available);
      if (r) out.set(name, r);
    }
    return out;
  };
  const endpoints = resolveTable("endpoints", (t) => registry.endpoint(t), "endpoint service");
  const backends = resolveTable("backends", (t) => registry.backend(t), "backend service");
  const ownPorts = claimOwnPorts(doc, registry, refs.options, bound, at);
  for (const p of idleTcpConfigs(doc, isOwnListener)) at(p.path, p.message, "warning");

  const middleware = new Map<string, ResolvedPlugin>();
  for (const [name, inst] of Object.entries(doc.middleware ?? {})) {
    const r = plugins.resolve(
      ["middleware", name],
      name,
      inst.type,
      inst.options,
      registry.middleware(inst.type),
      "middleware type",
      registry.middlewareTypes(),
    );
    if (r) middleware.set(name, r);
  }
  return { endpoints, backends, middleware, ownPorts };
}

/**
 * Endpoints with listeners of their own (DIMSE) share the port space with the networks. Read from
 * the unvalidated options, so a clash is reported even when other options are wrong too.
 */
function claimOwnPorts(
  doc: HarmonyConfig,
  registry: Registry,
  connected: ReadonlyMap<string, Record<string, unknown>>,
  bound: Map<number, string>,
  at: Report,
): Entries["ownPorts"] {
  const ownPorts: Entries["ownPorts"] = [];
  for (const [name, e] of Object.entries(doc.endpoints ?? {})) {
    const port: unknown = ownListener(registry, e.service)?.listenPort?.(connected.get(`endpoints\0${name}`) ?? {});
    if (typeof port !== "number" || port === 0) continue;
    const other = bound.get(port);
    if (other) at(["endpoints", name, "options", "port"], `port ${port} is already used by ${other}`);
    else {
      bound.set(port, `endpoint "${name}"`);
      ownPorts.push({ endpoint: name, port });
    }
  }
  return ownPorts;
}
