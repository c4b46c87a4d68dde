/**
 * Fills every endpoint's and backend's options with what its references supply — `target_ref`,
 * `targets`, `peer_ref`, and the `tcp_config` of a DIMSE endpoint's network — before plugins see
 * them (connections.ts says what each reference supplies). Problems come back with full key
 * paths, each said once even when several entries share a broken target.
 */
import type { HarmonyConfig } from "./schema.js";
import type { Registry } from "../plugins/registry.js";
import { displayPath, type Severity } from "./problems.js";
import {
  fromPeer,
  fromTarget,
  fromTargets,
  fromTcpConfig,
  optionKeys,
  overlay,
  type ConnectionProblem,
  type Supplied,
} from "./connections.js";

type Table = Record<string, unknown>;
type Path = (string | number)[];

export interface References {
  /** Options with references filled in, keyed `table\0name`. */
  options: Map<string, Table>;
  /** `table\0name` of entries whose reference is broken (reported; the plugin is not built). */
  broken: Set<string>;
  problems: { path: Path; message: string; severity: Severity }[];
}

export function resolveReferences(
  doc: HarmonyConfig,
  registry: Registry,
  isOwnListener: (service: string | undefined) => boolean,
): References {
  const out: References = { options: new Map(), broken: new Set(), problems: [] };
  const seen = new Set<string>();
  const say = (path: Path, message: string, severity: Severity = "error") => {
    const key = `${displayPath(path)}|${message}`;
    if (seen.has(key)) return; // a broken target shared by several backends is said once
    seen.add(key);
    out.problems.push({ path, message, severity });
  };
  const take = (entryPath: Path, r: Supplied): Table => {
    r.problems.forEach((p: ConnectionProblem) =>
      say(p.absolute ? p.path : [...entryPath, ...p.path], p.message, p.severity),
    );
    if (r.problems.some((p) => p.severity === "error")) out.broken.add(entryPath.join("\0"));
    return r.options;
  };

  // The tcp_config a DIMSE endpoint inherits: that of the first network of the first pipeline using it.
  // A harmony_network comes with it (the endpoint then serves DICOM over TLS): that network's, or
  // else that of any network of the pipeline. A DIMSE endpoint on its own port (the operator
  // renders HarmonyEndpoint.port so) of a pipeline served on an inter-gateway listener is that
  // network's endpoint too: the directory publishes it to peers, who dial it with mutual TLS, and
  // as plain DIMSE it would bypass the identity check and the policies.
  const tcpFor = new Map<string, { bind_address?: string; bind_port?: number; harmony_network?: string }>();
  for (const p of Object.values(doc.pipelines ?? {})) {
    if (p.enabled === false || !Array.isArray(p.endpoints)) continue;
    const nets = (p.networks ?? []).map((n) => doc.network?.[n]);
    const net = nets.find((t) => t?.tcp_config !== undefined);
    const harmony = net?.harmony_network ?? nets.find((t) => t?.harmony_network !== undefined)?.harmony_network;
    const tcp = net?.tcp_config || harmony !== undefined ? { ...net?.tcp_config, harmony_network: harmony } : undefined;
    if (tcp) for (const e of p.endpoints) if (!tcpFor.has(e)) tcpFor.set(e, tcp);
  }

  for (const table of ["endpoints", "backends"] as const) {
    for (const [name, entry] of Object.entries(doc[table] ?? {})) {
      if (typeof entry.service !== "string") continue;
      const plugin = table === "endpoints" ? registry.endpoint(entry.service) : registry.backend(entry.service);
      if (!plugin) continue; // reported as an unknown service
      const accepts = optionKeys(plugin.options);
      const entryPath = [table, name];
      let supplied: Table = {};
      if (table === "endpoints" && isOwnListener(entry.service)) supplied = fromTcpConfig(tcpFor.get(name), accepts);
      if (entry.peer_ref !== undefined) {
        if (table === "backends")
          say([...entryPath, "peer_ref"], "peer_ref is for endpoints; backends use target_ref; not used", "warning");
        else supplied = overlay(supplied, take(entryPath, fromPeer(doc, entry.peer_ref, accepts, entry.service)));
      }
      if (entry.targets !== undefined && entry.target_ref !== undefined) {
        say([...entryPath, "targets"], "give either target_ref or targets, not both");
        out.broken.add(entryPath.join("\0"));
      } else if (entry.targets !== undefined) {
        if (table === "endpoints") say([...entryPath, "targets"], "targets is for backends; not used", "warning");
        else supplied = take(entryPath, fromTargets(doc, entry.targets, accepts, entry.service));
      } else if (entry.target_ref !== undefined) {
        if (table === "endpoints")
          say([...entryPath, "target_ref"], "target_ref is for backends; endpoints use peer_ref; not used", "warning");
        else supplied = take(entryPath, fromTarget(doc, entry.target_ref, accepts, entry.service));
      }
      out.options.set(entryPath.join("\0"), overlay(supplied, entry.options ?? {}));
    }
  }
  return out;
}

/** `[network.X.tcp_config]` tables no DIMSE endpoint listens on. */
export function idleTcpConfigs(
  doc: HarmonyConfig,
  isOwnListener: (service: string | undefined) => boolean,
): { path: Path; message: string }[] {
  const out: { path: Path; message: string }[] = [];
  for (const [name, net] of Object.entries(doc.network ?? {})) {
    if (!net.tcp_config) continue;
    const usedBy = Object.values(doc.pipelines ?? {}).some(
      (p) =>
        p.enabled !== false &&
        p.networks?.includes(name) &&
        p.endpoints?.some((e) => isOwnListener(doc.endpoints?.[e]?.service)),
    );
    if (!usedBy)
      out.push({
        path: ["network", name, "tcp_config"],
        message: "no pipeline on this network has a DIMSE endpoint; nothing listens here",
      });
  }
  return out;
}
