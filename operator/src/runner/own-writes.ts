/**
 * The ConfigMaps this operator last wrote, so that its ConfigMap informer can tell the echo of its
 * own write from news. The write comes back as a watch event; passed on to the gateway, it cost a
 * second gateway reconcile per CR edit (~120 ms at 1,000 pipelines: the fingerprint, every
 * pipeline's status compared), which ran beside the data plane's reload and in front of the next
 * edit (bench/README.md, operator-scale). A ConfigMap is its own echo when it carries exactly what
 * was written: the config-hash annotation and the data. Recorded before the write is sent, so the
 * event cannot overtake it; anything else (a hand edit, a deletion, an older write's echo arriving
 * after a newer write) still wakes the gateway.
 */
import { createHash } from "node:crypto";
import type { KubernetesObject } from "@kubernetes/client-node";

interface ConfigMapLike extends KubernetesObject {
  data?: Record<string, string>;
}

export class OwnWrites {
  private readonly last = new Map<string, string>();

  constructor(
    /** The annotation that names a config's hash (HASH_ANNOTATION), part of what is compared. */
    private readonly hashAnnotation: string,
  ) {}

  /** A ConfigMap about to be applied. */
  wrote(cm: ConfigMapLike): void {
    this.last.set(key(cm), this.signature(cm));
  }

  /** True when the event's object is what this operator last wrote under that name. */
  isEcho(cm: ConfigMapLike): boolean {
    const s = this.last.get(key(cm));
    return s !== undefined && s === this.signature(cm);
  }

  forget(cm: ConfigMapLike): void {
    this.last.delete(key(cm));
  }

  private signature(cm: ConfigMapLike): string {
    const h = createHash("sha256")
      .update(cm.metadata?.annotations?.[this.hashAnnotation] ?? "")
      .update("\0");
    // The API server hands data back with its keys sorted; what was written may be in any order.
    const data = cm.data ?? {};
    for (const k of Object.keys(data).sort()) h.update(k).update("\0").update(data[k]!).update("\0");
    return h.digest("base64");
  }
}

const key = (o: KubernetesObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;
