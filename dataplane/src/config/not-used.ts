/**
 * Harmony 0.13 tables this build accepts and validates (the schema does that) but does not act
 * on. Each is reported once, as a warning, so a migrated config loads and says plainly what it
 * asked for that does not happen here, instead of failing or staying silent.
 */
import type { HarmonyConfig } from "./schema.js";
import { usedAuthentications } from "./connections.js";

export interface NotUsed {
  path: (string | number)[];
  message: string;
}

export function notUsed(doc: HarmonyConfig): NotUsed[] {
  const out: NotUsed[] = [];
  const names = (t: Record<string, unknown> | undefined) => Object.keys(t ?? {});

  const primary = doc.proxy?.primary_provider;
  if (primary !== undefined && primary !== "local")
    out.push({
      path: ["proxy", "primary_provider"],
      message: `"${primary}" is not used by this build: configuration is read from files only (as with "local")`,
    });
  const providers = names(doc.provider);
  if (providers.length > 0)
    out.push({
      path: ["provider", providers[0]!],
      message: `[provider.${providers.join("], [provider.")}] not used by this build: no provider polling, configuration is read from files`,
    });
  if (doc.runbeam && doc.runbeam.enabled !== false)
    out.push({ path: ["runbeam"], message: "[runbeam] is not used by this build: no cloud connection" });

  const used = usedAuthentications(doc);
  const idle = names(doc.authentications).filter((id) => !used.has(id));
  if (idle.length > 0)
    out.push({
      path: ["authentications", idle[0]!],
      message: `[authentications.${idle.join("], [authentications.")}] not used by this build: only a target's authentication sends credentials`,
    });
  const withAuth = Object.entries(doc.middleware ?? {}).filter(([, m]) => m.authentication !== undefined);
  if (withAuth.length > 0)
    out.push({
      path: ["middleware", withAuth[0]![0], "authentication"],
      message: `middleware authentication (${withAuth.map(([n]) => n).join(", ")}) is not used by this build; give the middleware its credentials in options`,
    });

  for (const [table, why] of [
    ["remote_ingress", "mesh members are reached through backends and [pipelines.X.mesh.egress]"],
    ["ingress", "mesh ingress is declared per pipeline in [pipelines.X.mesh.ingress]"],
    ["egress", "mesh egress is declared per pipeline in [pipelines.X.mesh.egress]"],
  ] as const) {
    const n = names(doc[table]);
    if (n.length > 0)
      out.push({
        path: [table, n[0]!],
        message: `[${table}.${n.join(`], [${table}.`)}] not used by this build: ${why}`,
      });
  }
  return out;
}
