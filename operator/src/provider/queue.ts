/**
 * A keyed work queue with client-go's semantics: a key waits at most once (adds while it waits
 * are merged), a key is never processed by two workers at once (an add while it is processed
 * queues it again for afterwards), and failures back off per key (5 ms doubling to 1000 s) under
 * an overall token bucket (10 qps, burst 100) — DefaultTypedControllerRateLimiter's numbers.
 */
export interface QueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  qps?: number;
  burst?: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; at: number }>();
  private waiters: ((key: string | undefined) => void)[] = [];
  private closed = false;
  private tokens: number;
  private lastRefill = Date.now();
  private readonly base: number;
  private readonly max: number;
  private readonly qps: number;
  private readonly burst: number;

  constructor(opts: QueueOptions = {}) {
    this.base = opts.baseDelayMs ?? 5;
    this.max = opts.maxDelayMs ?? 1_000_000;
    this.qps = opts.qps ?? 10;
    this.burst = opts.burst ?? 100;
    this.tokens = this.burst;
  }

  add(key: string): void {
    if (this.closed || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // re-queued by done()
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    if (ms <= 0) return this.add(key);
    // One timer per key, for the earliest deadline asked (as client-go's delaying queue): a later
    // request is covered by an earlier timer, an earlier one replaces a later timer.
    const at = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending) {
      if (pending.at <= at) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { timer, at });
  }

  /**
   * Drops the key's pending addAfter, if any: for a caller whose latest reconcile asked for no
   * second look, which an earlier one's timer would only repeat.
   */
  cancelAfter(key: string): void {
    const pending = this.timers.get(key);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.timers.delete(key);
  }

  /** Re-adds after the key's backoff (or the bucket's, whichever is longer). */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.max(Math.min(this.base * 2 ** n, this.max), this.bucketDelay());
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count (after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Next key to process; undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  /** The key was added again while it is being processed (a newer event waits for it). */
  pending(key: string): boolean {
    return this.processing.has(key) && this.dirty.has(key);
  }

  get length(): number {
    return this.queue.length;
  }

  shutDown(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    for (const w of this.waiters) w(undefined);
    this.waiters = [];
  }

  private bucketDelay(): number {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.qps);
    this.lastRefill = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }
}
