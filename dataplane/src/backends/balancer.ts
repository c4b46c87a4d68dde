/**
 * Chooses among a backend's targets (`targets = ["a", "b"]`), the way Envoy's and nginx's
 * upstream clusters do: round robin or least request, passive health (a target that fails
 * `maxFailures` times in a row, or answers 5xx `max5xx` times in a row, is ejected for a
 * cool-down, then tried again), and optional active
 * health (a probe result marks a target down or up). With every target ejected it still picks one
 * (Envoy's "panic" mode): refusing all traffic because of a health signal is worse than trying.
 * Targets carry weights (default 1): round robin is nginx's smooth weighted round robin, which
 * spreads a 70/30 split evenly over time rather than in bursts; least request compares in-flight
 * requests per unit of weight. A target of weight 0 is never chosen, not even in panic mode.
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
  private readonly weights: number[];
  /** Smooth weighted round robin's running scores. */
  private readonly current: number[];
  private readonly weighted: boolean;

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
    weights?: number[],
  ) {
    this.weights = names.map((_, i) => weights?.[i] ?? 1);
    this.current = names.map(() => 0);
    this.weighted = this.weights.some((w) => w !== 1);
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
    const untried = this.targets.map((_, i) => i).filter((i) => !tried.has(i) && this.weights[i]! > 0);
    if (untried.length === 0) return undefined;
    const healthy = untried.filter((i) => this.healthy(i));
    const pool = healthy.length > 0 ? healthy : untried; // panic: all down, try anyway
    if (this.weighted) return this.pickWeighted(pool);
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

  /**
   * nginx's smooth weighted round robin over `pool`: each target's score grows by its weight, the
   * highest score is chosen and pays back the pool's total. Least request: fewest in flight per
   * unit of weight, the round-robin choice breaking ties.
   */
  private pickWeighted(pool: number[]): number {
    let total = 0;
    let chosen = pool[0]!;
    for (const i of pool) {
      this.current[i]! += this.weights[i]!;
      total += this.weights[i]!;
      if (this.current[i]! > this.current[chosen]!) chosen = i;
    }
    if (this.policy === "least_request") {
      const load = (i: number) => this.targets[i]!.inflight / this.weights[i]!;
      for (const i of pool) if (load(i) < load(chosen)) chosen = i;
    }
    this.current[chosen]! -= total;
    return chosen;
  }

  /** Whether any target can be chosen at all (false when every weight is 0). */
  get choosable(): boolean {
    return this.weights.some((w) => w > 0);
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
