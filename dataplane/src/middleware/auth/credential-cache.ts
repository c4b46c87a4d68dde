/**
 * Remembers credentials that verified, for a short time, so a client sending the same Basic
 * credentials on every request costs one bcrypt per TTL instead of one per request. Entries are
 * keyed by an HMAC of user and password under a random key made at start-up, so the map holds
 * neither the password nor anything an attacker could brute-force offline without that key.
 */
import { createHmac, randomBytes } from "node:crypto";

export class CredentialCache {
  private readonly key = randomBytes(32);
  /** Key → expiry (ms since epoch), oldest first (Map insertion order). */
  private readonly entries = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  private id(user: string, password: string): string {
    return createHmac("sha256", this.key).update(user).update("\0").update(password).digest("base64");
  }

  has(user: string, password: string): boolean {
    if (this.ttlMs <= 0) return false;
    const k = this.id(user, password);
    const until = this.entries.get(k);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.entries.delete(k);
    return false;
  }

  add(user: string, password: string): void {
    if (this.ttlMs <= 0) return;
    const k = this.id(user, password);
    this.entries.delete(k);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(k, Date.now() + this.ttlMs);
  }
}
