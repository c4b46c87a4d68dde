/**
 * What one gateway's renders keep from one to the next, so that a render redoes only what changed:
 * the data plane's checker with its verdict on every rendered file (check-incremental.ts), and each
 * pipeline's rendered part with what it was rendered from. At 1,000 pipelines a render that
 * rendered and checked every pipeline again allocated ~190 MiB for an edit of one of them.
 */
import { IncrementalChecker } from "@harmony/dataplane";
import type { HarmonyEndpoint, HarmonyPipeline } from "../api/v1alpha1.js";
import type { SpecPaths } from "./spec-paths.js";

/** Why a pipeline is left out of the render: the condition that failed, and why. */
export interface PipelineFailure {
  condition: "Accepted" | "ResolvedRefs";
  reason: string;
  message: string;
}

/** One pipeline's rendered part, or why it has none. */
export type PipelineRender =
  | {
      toml: string;
      secrets: Record<string, Buffer>;
      /** Files for the rendered ConfigMap beside the TOML (fileOptions from ConfigMaps or inline). */
      configFiles: Record<string, string>;
      paths: SpecPaths;
      revisions: string[];
    }
  | { failure: PipelineFailure };

export class RenderCache {
  readonly checker = new IncrementalChecker();
  private readonly parts = new Map<string, { inputs: string; part: PipelineRender }>();

  /**
   * The pipeline's part as last rendered when `inputs` (pipelineInputs) are the same, else `make()`'s,
   * kept for next time. Undefined inputs: always rendered, never kept.
   */
  part(id: string, inputs: string | undefined, make: () => PipelineRender): PipelineRender {
    const had = this.parts.get(id);
    if (inputs !== undefined && had?.inputs === inputs) return had.part;
    const part = make();
    if (inputs !== undefined) this.parts.set(id, { inputs, part });
    else this.parts.delete(id);
    return part;
  }

  /** Forgets the pipelines a render no longer has. */
  keepOnly(ids: ReadonlySet<string>): void {
    for (const id of this.parts.keys()) if (!ids.has(id)) this.parts.delete(id);
  }
}

/**
 * Everything renderPipeline reads, as a string: the pipeline's spec (uid and generation), each
 * endpoint it names (the same, or absent), the gateway's networks and those left out. Undefined
 * for a pipeline that takes values from Secrets or ConfigMaps: those change without an event.
 */
export function pipelineInputs(
  p: HarmonyPipeline,
  endpoints: (namespace: string, name: string) => HarmonyEndpoint | undefined,
  gatewayNetworks: readonly string[],
  unavailable: ReadonlyMap<string, unknown>,
): string | undefined {
  const spec = p.spec;
  const refs = [...(spec.middleware ?? []), ...spec.backends].some(
    (x) => (x.secretOptions?.length ?? 0) > 0 || (x.fileOptions?.length ?? 0) > 0,
  );
  if (refs) return undefined;
  const ns = p.metadata.namespace ?? "";
  const m = (o: { metadata: { uid?: string; generation?: number } } | undefined) =>
    o ? `${o.metadata.uid}@${o.metadata.generation}` : "-";
  const eps = spec.endpoints.map((e) => `${e.name}=${m(endpoints(ns, e.name))}`).join(",");
  return `${ns}/${p.metadata.name}=${m(p)};${eps};${gatewayNetworks.join(",")};${[...unavailable.keys()].join(",")}`;
}
