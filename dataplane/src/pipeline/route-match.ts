/**
 * The request conditions a route may carry besides path and method (Gateway API HTTPRoute
 * matches): the Host it answers, header and query matches. Compiled once per config generation;
 * the route table only calls `conditionsMatch` for entries that have any.
 */
import type { IncomingHttpHeaders } from "node:http";
import { setFlagsFromString } from "node:v8";

export interface ValueMatchSpec {
  name: string;
  value: string;
  /** "exact" (default) or "regex". */
  type?: "exact" | "regex";
}

/** What the route table needs of a request beyond method and path. */
export interface RouteRequest {
  headers: IncomingHttpHeaders;
  /** The query string with its `?`, or "". */
  search: string;
}

export interface ValueMatcher {
  name: string;
  test(value: string): boolean;
}

export interface Conditions {
  /** Lower-cased; "*.example.com" for a wildcard. Undefined: any Host. */
  hostname?: string;
  headers: ValueMatcher[];
  query: ValueMatcher[];
}

// V8's linear-time regexp engine (the `l` flag) refuses, at compile time, every pattern it cannot
// run in time linear in the input (backreferences, lookaround): a header regex from config can
// then never backtrack catastrophically on a hostile header value. The flag must be set before the
// first `l` pattern is compiled; if this V8 ignores it, compiling fails and the config is refused.
setFlagsFromString("--enable-experimental-regexp-engine");

/** Longest regex accepted: patterns are config, but a bound keeps compiled automata small. */
export const MAX_REGEX_LENGTH = 1024;

/** Compiles a regex for header/query values, or explains why it is refused. */
export function compileLinearRegex(pattern: string): RegExp | string {
  if (pattern.length > MAX_REGEX_LENGTH) return `longer than ${MAX_REGEX_LENGTH} characters`;
  try {
    // eslint-disable-next-line no-invalid-regexp -- "l" is the linear engine's flag, enabled above
    return new RegExp(pattern, "l");
  } catch (e) {
    return `not a regular expression that runs in linear time (no backreferences or lookaround): ${(e as Error).message}`;
  }
}

/** The matcher for one header/query entry; `fold` lower-cases the name (headers). Throws on a refused regex. */
export function valueMatcher(spec: ValueMatchSpec, fold: boolean): ValueMatcher {
  const name = fold ? spec.name.toLowerCase() : spec.name;
  if (spec.type === "regex") {
    const re = compileLinearRegex(spec.value);
    if (typeof re === "string") throw new Error(`${spec.name}: regex ${re}`);
    return { name, test: (v) => re.test(v) };
  }
  const want = spec.value;
  return { name, test: (v) => v === want };
}

/**
 * Gateway API: of several entries naming the same header (case-insensitively) or query parameter,
 * only the first counts.
 */
export function firstPerName(list: readonly ValueMatchSpec[], fold: boolean): ValueMatchSpec[] {
  const seen = new Set<string>();
  return list.filter((m) => {
    const k = fold ? m.name.toLowerCase() : m.name;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * The request's host as routes compare it: Host (or HTTP/2 :authority) without its port,
 * lower-cased, without a trailing dot; `[::1]` stays bracketed. Undefined when there is none.
 */
export function requestHost(headers: IncomingHttpHeaders): string | undefined {
  const raw = headers.host ?? (headers[":authority"] as string | undefined);
  if (!raw) return undefined;
  let h = raw.toLowerCase();
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf("]");
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(":");
  if (colon >= 0) h = h.slice(0, colon);
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

/** Gateway API hostname match: exact, or `*.suffix` matching one or more labels before the suffix. */
export function hostMatches(pattern: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  if (pattern.charCodeAt(0) !== 42 /* * */) return pattern === host;
  const suffix = pattern.slice(1); // ".example.com"
  return host.length > suffix.length && host.endsWith(suffix);
}

/** The header's value as one string: repeated headers are compared joined, the way Node and Envoy join them. */
function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

/**
 * Whether the request meets every condition. `host` is the request's host, computed by the caller
 * once per request (null: not computed yet is the caller's business; undefined: no Host).
 */
export function conditionsMatch(c: Conditions, req: RouteRequest, host: string | undefined): boolean {
  if (c.hostname !== undefined && !hostMatches(c.hostname, host)) return false;
  for (const m of c.headers) {
    const v = headerValue(req.headers, m.name);
    if (v === undefined || !m.test(v)) return false;
  }
  if (c.query.length > 0) {
    const params = new URLSearchParams(req.search);
    for (const m of c.query) {
      const v = params.get(m.name); // a repeated parameter: its first value
      if (v === null || !m.test(v)) return false;
    }
  }
  return true;
}

/** Hostname specificity for ordering: exact (2) > wildcard (1) > any (0), then longer first. */
export function hostRank(hostname: string | undefined): [number, number] {
  if (hostname === undefined) return [0, 0];
  return [hostname.startsWith("*.") ? 1 : 2, hostname.length];
}
