/**
 * When a gateway is rendered after the events that change it. A render reads every attached
 * pipeline from the cache, so one render covers every event before it; rendering on each event
 * instead costs a render, a write of every shard a new pipeline lands in (shards are by hash, so
 * a batch of arrivals touches all of them) and that write's echo through the ConfigMap watch. At
 * 10,000 arriving pipelines the gateway was rendered 147 times and its ConfigMaps written 477
 * times (bench/README.md, operator-scale), the API server taking ~300 KiB a write while it was
 * still accepting the pipelines themselves.
 *
 * So a gateway's event opens a window instead: the gateway goes to its work queue once no event
 * has come for `quietMs`, or `maxDelayMs` after the window opened, whichever is first. One change
 * on its own waits only the quiet period; a stream of arrivals is rendered every `maxDelayMs`.
 * Events while the gateway's reconcile runs are held and open the window when it ends (that
 * reconcile read the cache before them): renders of a stream are then `maxDelayMs` apart at least,
 * however long each one takes, instead of back to back.
 */
export interface CoalesceOptions {
  /** An event with no other one after it for this long goes to the queue. */
  quietMs: number;
  /** However many follow, at most this long after the window opened. */
  maxDelayMs: number;
}

export const DEFAULT_COALESCE: CoalesceOptions = { quietMs: 250, maxDelayMs: 2000 };

export class Coalescer {
  /** Open windows: when each opened, and the timer that ends it. */
  private readonly open = new Map<string, { first: number; timer: NodeJS.Timeout }>();
  /** Keys whose reconcile runs now. */
  private readonly busy = new Set<string>();
  /** Keys with an event during their reconcile. */
  private readonly held = new Set<string>();
  private stopped = false;

  constructor(
    private readonly opts: CoalesceOptions,
    /** Hands the key to its work queue. */
    private readonly fire: (key: string) => void,
  ) {}

  /** Something the key's reconcile reads has changed. */
  poke(key: string): void {
    if (this.stopped) return;
    if (this.busy.has(key)) {
      this.held.add(key);
      return;
    }
    const now = Date.now();
    const window = this.open.get(key);
    const first = window?.first ?? now;
    if (window) clearTimeout(window.timer);
    const at = Math.min(now + this.opts.quietMs, first + this.opts.maxDelayMs);
    const timer = setTimeout(
      () => {
        this.open.delete(key);
        this.fire(key);
      },
      Math.max(0, at - now),
    );
    timer.unref();
    this.open.set(key, { first, timer });
  }

  /** The key's reconcile starts: it covers every event so far, and holds those to come. */
  started(key: string): void {
    const window = this.open.get(key);
    if (window) {
      clearTimeout(window.timer);
      this.open.delete(key);
    }
    this.busy.add(key);
  }

  /** The key's reconcile has ended: events held meanwhile open a window now. */
  finished(key: string): void {
    this.busy.delete(key);
    if (this.held.delete(key)) this.poke(key);
  }

  /** An event came during the key's reconcile (a newer change will follow it). */
  waiting(key: string): boolean {
    return this.held.has(key) || this.open.has(key);
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.open.values()) clearTimeout(w.timer);
    this.open.clear();
    this.held.clear();
  }
}
