/**
 * Informers that keep going: client-node's ListWatch stops on any error other than a clean close
 * or a 410, and a watch can go quiet without ending (kubernetes-client/javascript#596). Each
 * informer here restarts after an error with backoff and is relisted periodically, so the cache
 * converges whatever happened to the connection.
 */
import {
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesObject,
  type KubernetesListObject,
} from "@kubernetes/client-node";
import type { Logger } from "winston";

export interface InformerOptions<T extends KubernetesObject> {
  name: string;
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  /** Full relist period (default 5 min). */
  relistMs?: number;
  onChange: (obj: T, verb: "add" | "update" | "delete") => void;
}

export class ResilientInformer<T extends KubernetesObject> {
  private lw: ListWatch<T>;
  private relist: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  synced = false;

  constructor(
    kc: KubeConfig,
    private readonly opts: InformerOptions<T>,
    private readonly logger: Logger,
  ) {
    const list = async () => {
      const l = await opts.list();
      for (const o of l.items) slim(o);
      return l;
    };
    this.lw = new ListWatch<T>(opts.path, new SlimWatch(kc), list, false, opts.labelSelector);
    this.lw.on("add", (o) => opts.onChange(o, "add"));
    this.lw.on("update", (o) => opts.onChange(o, "update"));
    this.lw.on("delete", (o) => opts.onChange(o, "delete"));
    this.lw.on("connect", () => {
      this.failures = 0;
    });
    this.lw.on("error", (err: unknown) => {
      // Our own stop() (a periodic relist) aborts the watch request, which reports as an error.
      if ((err as { name?: string } | undefined)?.name === "AbortError") return;
      this.restartLater(err);
    });
  }

  async start(): Promise<void> {
    this.stopped = false;
    try {
      await this.lw.start();
      this.synced = true;
    } catch (e) {
      this.restartLater(e);
    }
    const every = this.opts.relistMs ?? 300_000;
    this.relist = setInterval(() => void this.restartNow("periodic relist"), every);
    this.relist.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.relist);
    clearTimeout(this.retry);
    await this.lw.stop();
  }

  isSynced(): boolean {
    return this.synced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace);
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    this.failures++;
    const delay = Math.min(30_000, 250 * 2 ** Math.min(this.failures, 7));
    this.logger.warn("Watch failed; restarting", { informer: this.opts.name, error: String(err), delay_ms: delay });
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.restartNow("error"), delay);
    this.retry.unref();
  }

  private async restartNow(why: string): Promise<void> {
    if (this.stopped) return;
    try {
      await this.lw.stop();
      // ListWatch.start() resumes from the last resourceVersion it saw, which replays nothing a
      // quiet or broken watch failed to deliver. An empty version makes it list again, diff the
      // cache and fire add/update/delete for whatever changed (client-node 1.4, cache.js doneHandler).
      if (why === "periodic relist") (this.lw as unknown as { resourceVersion: string }).resourceVersion = "";
      await this.lw.start();
      this.synced = true;
      this.logger.debug("Informer relisted", { informer: this.opts.name, why });
    } catch (e) {
      this.restartLater(e);
    }
  }
}

/**
 * What the cache keeps of an object: everything but metadata.managedFields, which the operator
 * never reads and which server-side apply makes the largest part of a small object (about half of
 * a HarmonyPipeline with its status). At 1,000 pipelines and endpoints that is tens of MiB.
 */
export function slim<T extends KubernetesObject>(o: T): T {
  if (o?.metadata?.managedFields) delete o.metadata.managedFields;
  return o;
}

/** A Watch whose events reach the cache already slimmed. */
class SlimWatch extends Watch {
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj, watchObj) => callback(phase, slim(obj as KubernetesObject), watchObj),
      done,
    );
  }
}
