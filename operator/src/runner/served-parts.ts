/**
 * Which of a gateway's config hashes carry each pipeline as it is now. A pipeline is served by a
 * pod whose config holds its current part, whatever else that config holds: counting only the pods
 * on the newest hash turned every pipeline of the gateway not Ready on every edit of any one of
 * them, until the pods reloaded (1,000 status writes and back at 1,000 pipelines, and a false
 * alarm for each pipeline the edit did not touch).
 */

/** Hashes remembered per pipeline: pods more than this many configs behind count as not serving it. */
const KEEP = 16;

type Parts = Map<string, { digest: string; hashes: string[] }>;

const byGateway = new Map<string, Parts>();

/**
 * Notes that config `hash` of `gateway` is written with these pipeline parts (RenderResult.parts):
 * a pipeline whose digest is unchanged adds the hash to those that serve it; a changed or new one
 * starts again from this hash alone. Level-based: recording the same hash again changes nothing.
 */
export function recordParts(gateway: string, hash: string, parts: ReadonlyMap<string, string>): void {
  let known = byGateway.get(gateway);
  if (!known) byGateway.set(gateway, (known = new Map() as Parts));
  for (const key of known.keys()) if (!parts.has(key)) known.delete(key);
  for (const [key, digest] of parts) {
    const prev = known.get(key);
    if (prev?.digest !== digest) known.set(key, { digest, hashes: [hash] });
    else if (!prev.hashes.includes(hash)) prev.hashes = [...prev.hashes, hash].slice(-KEEP);
  }
}

/** The config hashes known to serve this pipeline ("ns/name") as it is now; none when unknown. */
export function hashesServing(gateway: string, pipeline: string): readonly string[] {
  return byGateway.get(gateway)?.get(pipeline)?.hashes ?? [];
}

/** A gateway that is gone. */
export function forgetParts(gateway: string): void {
  byGateway.delete(gateway);
}
