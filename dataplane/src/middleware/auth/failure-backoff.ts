/**
 * Per-client backoff after failed logins: after `limit` failures in a row a client is refused
 * (429 with Retry-After) for 1 s, doubling with each further failure up to `maxMs`, before any
 * password work is done. A success clears the client's record; a record untouched for `maxMs`
 * is forgotten. The map is bounded (oldest records go first), so a spray from many addresses
 * cannot grow it without limit.
 */
interface Entry {
  failures: number;
  blockedUntil: number;
  last: number;
}

const FIRST_BACKOFF_MS = 1000;

export class FailureBackoff {
  private readonly clients = new Map<string, Entry>();

  constructor(
    /** Failures allowed before backoff starts; 0 turns backoff off. */
    private readonly limit: number,
    private readonly maxMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** Milliseconds the client must still wait, or 0. */
  blockedFor(client: string): number {
    if (this.limit <= 0) return 0;
    const e = this.clients.get(client);
    if (!e) return 0;
    const now = Date.now();
    if (now - e.last > this.maxMs && now >= e.blockedUntil) {
      this.clients.delete(client);
      return 0;
    }
    return Math.max(0, e.blockedUntil - now);
  }

  failed(client: string): void {
    if (this.limit <= 0) return;
    const now = Date.now();
    const e = this.clients.get(client) ?? { failures: 0, blockedUntil: 0, last: now };
    if (now - e.last > this.maxMs) e.failures = 0;
    e.failures++;
    e.last = now;
    if (e.failures >= this.limit)
      e.blockedUntil = now + Math.min(this.maxMs, FIRST_BACKOFF_MS * 2 ** Math.min(e.failures - this.limit, 30));
    // Re-inserted so the map stays ordered by last activity, and the oldest go first when full.
    this.clients.delete(client);
    if (this.clients.size >= this.maxEntries) this.clients.delete(this.clients.keys().next().value!);
    this.clients.set(client, e);
  }

  succeeded(client: string): void {
    this.clients.delete(client);
  }
}
