/**
 * Chooses among a backend's targets (`targets = ["a", "b"]`), the way Envoy's and nginx's
 * upstream clusters do: round robin or least request, passive health (a target that fails
 * `maxFailures` times in a row, or answers 5xx `max5xx` times in a row, is ejected for a
 * cool-down, then tried again), and optional active
 * health (a probe result marks a target down or up). With every target ejected it still picks one
 * (Envoy's "panic" mode): refusing all traffic because of a health signal is worse than trying.
 */
export type Policy = "round_robin" | "least_request";

export interface TargetState {
  name: string;
  inflight: number;
  /** Consecutive failures since the last success. */
  failures: number;
  /** Consecutive 5xx answers since the last other answer. */
  errors5xx: number;
  /** Passive ejection ends at this time (ms); 0 when not ejected. */
  ejectedUntil: number;
  /** Last active probe result; true when there is no active check. */
  probeHealthy: boolean;
  /** Health as last reported to onHealth (an ejection ends by the clock, noticed at the next look). */
  reported: boolean;
}

export class Balancer {
  readonly targets: TargetState[];
  private cursor = 0;

  constructor(
    names: string[],
    private readonly policy: Policy,
    private readonly maxFailures: number,
    private readonly ejectMs: number,
    private readonly now: () => number = Date.now,
    /** Told when a target's health changes (metrics, logs). */
    private readonly onHealth: (t: TargetState, healthy: boolean) => void = () => {},
    /** Consecutive 5xx answers that eject a target, as Envoy's consecutive_5xx (0: never). */
    private readonly max5xx = 0,
  ) {
    this.targets = names.map((name) => ({
      name,
      inflight: 0,
      failures: 0,
      errors5xx: 0,
      ejectedUntil: 0,
      probeHealthy: true,
      reported: true,
    }));
  }

  healthy(i: number): boolean {
    const t = this.targets[i]!;
    return t.probeHealthy && t.ejectedUntil <= this.now();
  }

  /** The next target to try, skipping those already tried for this request; undefined when none are left. */
  pick(tried: ReadonlySet<number>): number | undefined {
    this.targets.forEach((_, i) => this.sync(i));
    const untried = this.targets.map((_, i) => i).filter((i) => !tried.has(i));
    if (untried.length === 0) return undefined;
    const healthy = untried.filter((i) => this.healthy(i));
    const pool = healthy.length > 0 ? healthy : untried; // panic: all down, try anyway
    const n = this.targets.length;
    // Round-robin order starting at the cursor; least request takes the least busy in that order.
    const ordered = [...pool].sort((a, b) => ((a - this.cursor + n) % n) - ((b - this.cursor + n) % n));
    let chosen = ordered[0]!;
    if (this.policy === "least_request") {
      for (const i of ordered) if (this.targets[i]!.inflight < this.targets[chosen]!.inflight) chosen = i;
    }
    this.cursor = (chosen + 1) % n;
    return chosen;
  }

  begin(i: number): void {
    this.targets[i]!.inflight++;
  }

  /**
   * Ends an attempt: "failed" for a connection-level failure or timeout of this target, "5xx" for
   * an answer with a 5xx status, "neutral" when the client left. A 5xx answer still proves the
   * target reachable, so it does not reset nor add to the connection failures, and the reverse.
   */
  end(i: number, outcome: "ok" | "failed" | "5xx" | "neutral"): void {
    const t = this.targets[i]!;
    t.inflight--;
    if (outcome === "neutral") return;
    if (outcome === "ok") {
      t.failures = 0;
      t.errors5xx = 0;
      t.ejectedUntil = 0;
    } else if (outcome === "5xx") {
      t.failures = 0;
      t.errors5xx++;
      if (this.max5xx > 0 && t.errors5xx >= this.max5xx) t.ejectedUntil = this.now() + this.ejectMs;
    } else {
      t.failures++;
      if (this.maxFailures > 0 && t.failures >= this.maxFailures) t.ejectedUntil = this.now() + this.ejectMs;
    }
    this.sync(i);
  }

  /** An active probe's verdict. */
  probe(i: number, ok: boolean): void {
    const t = this.targets[i]!;
    t.probeHealthy = ok;
    if (ok) {
      t.failures = 0;
      t.errors5xx = 0;
      t.ejectedUntil = 0;
    }
    this.sync(i);
  }

  private sync(i: number): void {
    const t = this.targets[i]!;
    const now = this.healthy(i);
    if (now === t.reported) return;
    t.reported = now;
    this.onHealth(t, now);
  }
}
