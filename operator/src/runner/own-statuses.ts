/**
 * The statuses this operator last wrote on HarmonyEndpoints, so that the endpoint informer can
 * tell the echo of its own status write from news. Each endpoint's reconcile ends in at most one
 * status write, and its echo came back as an update that queued the endpoint again: one reconcile
 * in four or five while pipelines arrived (bench/README.md, operator-scale: ~4,700 endpoint
 * reconciles for 1,000 endpoints), each of which found nothing to write. An update is an echo when
 * its spec is the one reconciled (the caller compares generations) and its status holds exactly the
 * fields that write set; anyone else's status edit (or an older write's echo behind a newer one)
 * is still news. Recorded before the write is sent, so the event cannot overtake it.
 */
import { createHash } from "node:crypto";
import { canonical } from "./conditions.js";

interface Obj {
  metadata: { namespace?: string; name?: string };
  status?: object;
}

export class OwnStatuses {
  /** "namespace/name" → the fields written and a digest of their values. */
  private readonly last = new Map<string, { keys: string[]; sig: string }>();

  /** A status merge patch about to be sent; a null field is one the patch removes. */
  wrote(obj: Obj, status: Record<string, unknown>): void {
    const keys = Object.keys(status).sort();
    this.last.set(key(obj), { keys, sig: signature(keys, status) });
  }

  /** True when the object's status holds what this operator last wrote on it. */
  isEcho(obj: Obj): boolean {
    const w = this.last.get(key(obj));
    return w !== undefined && w.sig === signature(w.keys, (obj.status ?? {}) as Record<string, unknown>);
  }

  forget(obj: Obj): void {
    this.last.delete(key(obj));
  }
}

const key = (o: Obj) => `${o.metadata.namespace}/${o.metadata.name}`;

/** Removed (null) and absent are the same; key order is not ours to rely on (canonical). */
function signature(keys: string[], status: Record<string, unknown>): string {
  const picked = Object.fromEntries(keys.map((k) => [k, status[k] ?? undefined]));
  return createHash("sha1").update(canonical(picked)).digest("base64");
}
