/**
 * Retries binding the listeners a reload could not bind (the port taken by another process), with
 * backoff, until they are bound or a reload no longer asks for them. Meanwhile their last good
 * listeners serve and /readyz says which are not listening.
 */
import type { Logger } from "winston";
import type { Metrics } from "../observability/metrics.js";
import type { BindFailure } from "./listener-set.js";

/** First wait, and the most it grows to: a freed port is taken within seconds, a busy one is not hammered. */
export const FIRST_RETRY_MS = 250;
export const MAX_RETRY_MS = 10_000;

export class BindRetry {
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = false;
  /** Networks waiting: the last failure, and the retries made. */
  private waiting = new Map<string, { failure: BindFailure; retries: number }>();

  constructor(
    /** Stages the wanted listeners again (serialised with reloads); returns what is still unbound. */
    private readonly run: () => Promise<BindFailure[]>,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /**
   * What a reload (or a retry) left unbound. A reload starts the backoff over: it is a new attempt
   * by itself, and its listeners may differ.
   */
  update(unbound: BindFailure[], fromReload: boolean): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const before = this.waiting;
    this.waiting = new Map(
      unbound.map((f) => [
        f.network,
        { failure: f, retries: (before.get(f.network)?.retries ?? 0) + (fromReload ? 0 : 1) },
      ]),
    );
    this.metrics.listenersUnbound.set(unbound.length);
    if (!unbound.length) {
      this.attempt = 0;
      return;
    }
    if (fromReload) this.attempt = 0;
    const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.attempt++);
    this.timer = setTimeout(() => void this.tick(), delay);
    // A process on its way out does not wait for the next attempt.
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    const tried = new Map(this.waiting);
    let left: BindFailure[];
    try {
      left = await this.run();
    } catch (e) {
      this.logger.error("listener bind retry failed", { error: (e as Error).message });
      left = [...tried.values()].map((w) => w.failure);
    }
    const still = new Set(left.map((f) => f.network));
    for (const [network, w] of tried) {
      const result = still.has(network) ? "failed" : "bound";
      this.metrics.listenerBindRetries.inc({ network, result });
      if (result === "bound")
        this.logger.info("listener bound after retry", {
          network,
          address: w.failure.spec.address,
          port: w.failure.spec.port,
          retries: w.retries + 1,
        });
    }
    this.update(left, false);
  }
}
