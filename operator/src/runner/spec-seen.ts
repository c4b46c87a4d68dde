/**
 * Which informer events can change what a gateway renders. Most events at scale are the
 * operator's own status writes (one per pipeline and endpoint per config change); passing each
 * on as a gateway reconcile re-rendered and re-validated every pipeline of the gateway once per
 * write. An object is remembered by the parts of it that rendering and attachment read, and an
 * update that leaves them as they were is no news to its gateway.
 */
import type { KubernetesObject } from "@kubernetes/client-node";

type Meta = Pick<
  NonNullable<KubernetesObject["metadata"]>,
  "generation" | "labels" | "annotations" | "deletionTimestamp"
>;

export class SpecSeen {
  private readonly seen = new Map<string, string>();

  /** Records the object's fingerprint; true unless this is an update that left it unchanged. */
  changed(key: string, verb: "add" | "update" | "delete", fingerprint: string): boolean {
    if (verb === "delete") {
      this.seen.delete(key);
      return true;
    }
    const before = this.seen.get(key);
    this.seen.set(key, fingerprint);
    return verb === "add" || before !== fingerprint;
  }
}

/** Spec, annotations (a network directory reads the gateway's address from one) and deletion. */
export const gatewayFingerprint = (m: Meta | undefined) =>
  `${m?.generation}/${canonical(m?.annotations)}/${m?.deletionTimestamp ? "deleting" : ""}`;

/** Spec, labels (a gateway's pipelineSelector reads them) and deletion. */
export const pipelineFingerprint = (m: Meta | undefined) =>
  `${m?.generation}/${canonical(m?.labels)}/${m?.deletionTimestamp ? "deleting" : ""}`;

/** A gateway (or the pipeline reconcile) has written its verdict on the pipeline's current spec. */
export const judged = (p: { metadata: { generation?: number }; status?: { observedGeneration?: number } }) =>
  p.status?.observedGeneration === p.metadata.generation;

/**
 * What an endpoint's status reads of a pipeline that uses it besides the reference (which is spec):
 * whether its current spec is judged yet, and whether it is Programmed (endpoint-reconciler.ts).
 */
export const pipelineUseFingerprint = (p: {
  metadata: { generation?: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
}) => `${judged(p)}/${p.status?.conditions?.find((c) => c.type === "Programmed")?.status}`;

/** Spec only. */
export const endpointFingerprint = (m: Meta | undefined) => String(m?.generation);

/** A string map as one string whatever its key order (the API server's order is not ours to rely on). */
function canonical(map: Record<string, string> | undefined): string {
  return JSON.stringify(Object.entries(map ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
