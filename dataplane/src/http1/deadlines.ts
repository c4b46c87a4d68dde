/**
 * One coarse clock for every timeout of a pool's connections (connect, headers, body, idle),
 * instead of a Node timer created and cleared two or three times per request: arming is a field
 * write and a Set lookup, a body chunk's refresh a field write. One interval ticks while anything
 * is armed and looks at each armed connection (at most the pool's size); it stops when none is.
 *
 * Like undici's own "fast timers": a deadline never fires early, and fires about one tick late at
 * most (later only when the event loop itself is late).
 * The tick is a quarter of the pool's shortest timeout, between 10 and 500 ms (`tickFor`).
 */
export interface Expiring {
  /** performance.now() time after which it expires; 0: nothing armed. Written only through Deadlines. */
  deadline: number;
  /** Its deadline passed: called once, with `deadline` already back at 0. */
  expire(): void;
}

/** The shortest tick, so that many short timeouts do not turn into a busy loop. */
const MIN_TICK = 10;
/** The longest tick: a 30 s timeout fires within 30.5 s. */
const MAX_TICK = 500;

/** A tick for timeouts of these lengths (0: not used): late by at most a quarter of the shortest. */
export function tickFor(timeouts: number[]): number {
  let shortest = Infinity;
  for (const t of timeouts) if (t > 0 && t < shortest) shortest = t;
  return Math.min(MAX_TICK, Math.max(MIN_TICK, Math.floor(shortest / 4)));
}

export class Deadlines {
  /** Every Expiring whose deadline is not 0 is in here (and some whose deadline went back to 0). */
  private readonly armed = new Set<Expiring>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly tick: number) {}

  /** Its timer is running (something is, or was until the last tick, armed). */
  get ticking(): boolean {
    return this.timer !== undefined;
  }

  /**
   * `c` expires `ms` from now (ms > 0), replacing what it had armed. `now`: a performance.now()
   * the caller read in this same synchronous run (one read for many sockets armed together).
   */
  arm(c: Expiring, ms: number, now = performance.now()): void {
    c.deadline = now + ms;
    this.armed.add(c);
    if (this.timer === undefined) {
      this.timer = setInterval(this.onTick, this.tick);
      // The sockets keep the process alive while they are open; the clock alone does not.
      this.timer.unref();
    }
  }

  /** Moves an armed deadline to `ms` from now (a body chunk arrived); nothing if none is armed. */
  refresh(c: Expiring, ms: number): void {
    if (c.deadline !== 0) c.deadline = performance.now() + ms;
  }

  /** Nothing armed for `c` any more (it leaves the set at the next tick). */
  disarm(c: Expiring): void {
    c.deadline = 0;
  }

  private readonly onTick = (): void => {
    const now = performance.now();
    for (const c of this.armed) {
      const d = c.deadline;
      if (d === 0) this.armed.delete(c);
      else if (d <= now) {
        this.armed.delete(c);
        c.deadline = 0;
        c.expire(); // may arm it again (added back, seen again in this loop but not expired)
      }
    }
    if (this.armed.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  };
}
