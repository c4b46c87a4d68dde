/**
 * The last render of each gateway and a digest of what it read, so a reconcile whose inputs did
 * not change (our own ConfigMap write coming back, pods, requeues) reuses it instead of rendering
 * and validating every pipeline again.
 */
import { createHash } from "node:crypto";
import { RenderCache } from "../translator/render-cache.js";
import type { HarmonyGateway, HarmonyPipeline } from "../api/v1alpha1.js";
import type { RenderResult } from "../translator/render.js";
import type { Caches } from "./reconciler-deps.js";
import { forgetParts } from "./served-parts.js";

/** The last render of each gateway ("ns/name") and what it was rendered from. */
export const renders = new Map<string, { fp: string; r: RenderResult }>();

/**
 * Each gateway's render cache: the data plane's verdict on every rendered file and each
 * pipeline's part, so a render redoes only what changed (one pipeline's file for an edit of one
 * pipeline) instead of rendering and compiling all of them at once.
 */
const caches = new Map<string, RenderCache>();

export function renderCacheFor(gateway: string): RenderCache {
  let c = caches.get(gateway);
  if (!c) caches.set(gateway, (c = new RenderCache()));
  return c;
}

/** A gateway that is gone: what was kept for it goes too. */
export function forget(gateway: string): void {
  renders.delete(gateway);
  caches.delete(gateway);
  forgetParts(gateway);
}

/**
 * Everything a render reads when no Secret or ConfigMap is referenced (those can change without an
 * event, so such a gateway always renders): the gateway's and each pipeline's spec (uid and
 * generation), creation times (which of two claims wins), each referenced endpoint's spec, and
 * the gateway's network files.
 */
export function renderFingerprint(
  gw: HarmonyGateway,
  pipelines: readonly HarmonyPipeline[],
  endpoints: Caches["endpoints"],
  nets: { names: string[]; hash: string },
): string {
  const h = createHash("sha256");
  const m = (o: { metadata: { uid?: string; generation?: number } } | undefined) =>
    o ? `${o.metadata.uid}@${o.metadata.generation}` : "-";
  h.update(`${m(gw)}\0${nets.names.join(",")}\0${nets.hash}\0`);
  for (const p of pipelines) {
    const ns = p.metadata.namespace;
    h.update(`${ns}/${p.metadata.name}=${m(p)}@${p.metadata.creationTimestamp}`);
    for (const e of p.spec.endpoints) h.update(`;${e.name}=${m(endpoints.get(e.name, ns))}`);
    h.update("\0");
  }
  return h.digest("hex");
}
