/**
 * Events the way client-go's recorder writes them: a repeat of the same event (same object, type,
 * reason and message) bumps `count` and `lastTimestamp` on the Event already written instead of
 * creating another one (EventCorrelator's aggregation), so a flapping condition is one line in
 * `kubectl describe`, not a page. What was written is remembered in a small LRU, as client-go does.
 */
import { PatchStrategy, setHeaderOptions, type CoreV1Api } from "@kubernetes/client-node";

export interface InvolvedObject {
  kind: string;
  apiVersion: string;
  metadata: { name?: string; namespace?: string; uid?: string };
}

interface Seen {
  name: string;
  count: number;
}

/** client-go's maxLruCacheEntries. */
const LRU_SIZE = 4096;
const MAX_MESSAGE = 1024;

export class EventRecorder {
  /** Insertion order is recency: a hit is deleted and set again. */
  private readonly seen = new Map<string, Seen>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly component = "harmony-operator",
    private readonly size = LRU_SIZE,
  ) {}

  async record(obj: InvolvedObject, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    const namespace = obj.metadata.namespace!;
    const text = message.slice(0, MAX_MESSAGE);
    const key = [obj.kind, namespace, obj.metadata.name, obj.metadata.uid, type, reason, text].join("\0");
    const now = new Date().toISOString();
    const prev = this.seen.get(key);
    if (prev) {
      this.seen.delete(key);
      try {
        await this.core.patchNamespacedEvent(
          {
            name: prev.name,
            namespace,
            body: { count: prev.count + 1, lastTimestamp: now },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
        this.remember(key, { ...prev, count: prev.count + 1 });
        return;
      } catch (e) {
        // The Event expired (events have a TTL) or was deleted: start a new one.
        if ((e as { code?: number }).code !== 404) throw e;
      }
    }
    const created = await this.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${obj.metadata.name}.`, namespace },
        involvedObject: {
          kind: obj.kind,
          apiVersion: obj.apiVersion,
          name: obj.metadata.name,
          namespace,
          uid: obj.metadata.uid,
        },
        type,
        reason,
        message: text,
        source: { component: this.component },
        firstTimestamp: now as unknown as Date,
        lastTimestamp: now as unknown as Date,
        count: 1,
      },
    });
    this.remember(key, { name: created.metadata.name!, count: 1 });
  }

  private remember(key: string, v: Seen): void {
    this.seen.set(key, v);
    if (this.seen.size > this.size) this.seen.delete(this.seen.keys().next().value!);
  }
}
