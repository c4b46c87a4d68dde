/**
 * `[pipelines.X.mesh.ingress.<n>]` / `.egress.<n>` that an enabled `[mesh.<m>]` lists become
 * mesh_auth middleware instances (named `mesh:<pipeline>:<role>:<n>`): ingress verification runs
 * first on the request side, egress signing last.
 */
import type { PipelineSection } from "../schema.js";
import type { PipelineScope } from "./pipeline-scope.js";

/** The pipeline's mesh instances, first and last on the request side; undefined when one is broken (reported). */
export function resolveMesh(
  scope: PipelineScope,
  name: string,
  p: PipelineSection,
): { first: string[]; last: string[] } | undefined {
  const { doc, registry, at } = scope;
  const out = { first: [] as string[], last: [] as string[] };
  const section = p.mesh as Record<string, Record<string, Record<string, unknown>>> | undefined;
  if (!section) return out;
  const meshes = Object.entries((doc as { mesh?: Record<string, Record<string, unknown>> }).mesh ?? {});
  let fine = true;
  for (const role of ["ingress", "egress"] as const) {
    for (const [n, entry] of Object.entries(section[role] ?? {})) {
      if (entry.enabled === false) continue;
      const path = ["pipelines", name, "mesh", role, n];
      const owner = meshes.find(
        ([, m]) => m.enabled !== false && Array.isArray(m[role]) && (m[role] as unknown[]).includes(n),
      );
      if (!owner) {
        at(path, `no enabled [mesh.*] lists "${n}" in its ${role}`);
        fine = false;
        continue;
      }
      if (role === "ingress" && (!Array.isArray(entry.urls) || entry.urls.length === 0)) {
        at([...path, "urls"], "an ingress needs urls (where mesh members reach it)");
        fine = false;
        continue;
      }
      const instance = `mesh:${name}:${role}:${n}`;
      const plugin = registry.middleware("mesh_auth")!;
      const r = scope.plugins.resolve(
        path,
        instance,
        "mesh_auth",
        {
          mesh: owner[0],
          role,
          mode: entry.mode ?? "default",
          source: doc.proxy?.id ?? doc.proxy?.name ?? "harmony",
        },
        plugin,
        "middleware type",
        registry.middlewareTypes(),
      );
      if (!r) {
        fine = false;
        continue;
      }
      scope.middleware.set(instance, r);
      (role === "ingress" ? out.first : out.last).push(instance);
    }
  }
  return fine ? out : undefined;
}
