/**
 * Fixed-window request counting per client. Counters live in a shared resource keyed by the
 * rule, so a config reload that keeps the rule keeps its counts; idle clients are forgotten.
 */
export interface RateState {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  resetS: number;
}

export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  private readonly gc: NodeJS.Timeout;

  constructor(
    readonly max: number,
    readonly windowS: number,
  ) {
    this.gc = setInterval(() => this.sweep(Date.now()), 60_000);
    this.gc.unref();
  }

  hit(client: string, now: number): RateState {
    const w = this.windows.get(client);
    const span = this.windowS * 1000;
    if (!w || now - w.start >= span) {
      this.windows.set(client, { start: now, count: 1 });
      return { allowed: true, limit: this.max, remaining: this.max - 1, resetS: this.windowS };
    }
    w.count++;
    const resetS = Math.max(1, Math.ceil((w.start + span - now) / 1000));
    return { allowed: w.count <= this.max, limit: this.max, remaining: Math.max(0, this.max - w.count), resetS };
  }

  peek(client: string, now: number): RateState | undefined {
    const w = this.windows.get(client);
    if (!w || now - w.start >= this.windowS * 1000) return undefined;
    return {
      allowed: w.count <= this.max,
      limit: this.max,
      remaining: Math.max(0, this.max - w.count),
      resetS: Math.max(1, Math.ceil((w.start + this.windowS * 1000 - now) / 1000)),
    };
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows)
      if (now - w.start > Math.max(300_000, this.windowS * 2000)) this.windows.delete(k);
  }

  close(): Promise<void> {
    clearInterval(this.gc);
    return Promise.resolve();
  }
}
