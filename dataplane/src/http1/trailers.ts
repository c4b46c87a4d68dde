/**
 * A response's trailer fields (after a chunked body) as undici hands them to onResponseEnd:
 * lower-cased names, a repeated name's values in an array, and a field named `__proto__` kept as
 * an own property, never set as the object's prototype.
 */
import type { IncomingHttpHeaders } from "node:http";

/** `raw`: name, value, name, value... as the parser flushed them; none: an empty object. */
export function trailersOf(raw: readonly string[] | undefined): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  if (!raw) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const cur = Object.hasOwn(out, key) ? out[key] : undefined;
    const next = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value];
    Object.defineProperty(out, key, { value: next, enumerable: true, configurable: true, writable: true });
  }
  return out;
}
