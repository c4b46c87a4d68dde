/**
 * Per-network route table, in Gateway API precedence: the most specific hostname (exact, then
 * longest wildcard, then any), then an exact path before the longest prefix, then a method
 * restriction, then more header matches, then more query matches, then the lower `precedence`
 * number, then config order. Entries are sorted once per config generation, so matching is a
 * short loop that returns the first entry the request meets; entries without hostname, header or
 * query conditions (every route before Gateway API) cost what they always did.
 *
 * Built in two steps: `add` only appends (and indexes the entry by its path for `conflict`); the
 * first read sorts, once. Sorting on every add, and finding a duplicate by scanning every entry,
 * made building a table of n routes O(n²) with a comparator that allocates: at 10,000 pipelines,
 * seconds per build, in every data-plane reload and every operator render's check across files.
 */
import { canonicalLiteral } from "./canonical-path.js";
import { conditionsMatch, hostRank, requestHost, type Conditions, type RouteRequest } from "./route-match.js";

export interface RouteEntry<R> {
  prefix: string;
  methods: ReadonlySet<string> | "*";
  route: R;
  /** Gateway API Exact: `prefix` is the whole path. */
  exact?: boolean;
  /** Hostname, header and query conditions; undefined when there are none (the fast path). */
  conditions?: Conditions;
  /** Tie-break after specificity; lower wins (default 0). */
  precedence?: number;
  /** Identity of `conditions` for duplicate detection (hostname, headers, query as written). */
  conditionsKey?: string;
  /** A method mismatch here is no match at all (404), not a 405. */
  methodMismatch404?: boolean;
}

export type MatchResult<R> = { readonly route: R } | { allow: string[] } | undefined;

/** `hit` is the entry's match result, made once: a matched request allocates nothing here. */
type Stored<R> = RouteEntry<R> & { key: string; order: number; hit: { readonly route: R } };

const NO_REQUEST: RouteRequest = { headers: {}, search: "" };

export class RouteTable<R> {
  private readonly entries: Stored<R>[] = [];
  /** Entries by `key` (the path as compared), for `conflict`. */
  private readonly byKey = new Map<string, Stored<R>[]>();
  /** Entries were added since the last sort. */
  private unsorted = false;
  /** How many times the entries were sorted (for tests: once per build, however many routes). */
  sorts = 0;
  /** No entry has an exact path or conditions: the loop before Gateway API, unchanged, serves. */
  private simple = true;

  /**
   * `caseInsensitive` (proxy.path_normalization.case_insensitive): prefixes match in any case.
   * Canonical paths are ASCII, so lower-casing keeps their length and the prefix slices stay right.
   */
  constructor(private readonly caseInsensitive = false) {}

  add(entry: RouteEntry<R>): void {
    const key = this.caseInsensitive ? entry.prefix.toLowerCase() : entry.prefix;
    if (entry.exact || entry.conditions || entry.methodMismatch404) this.simple = false;
    // Every entry gets the same shape, so the match loop's property reads stay monomorphic.
    this.entries.push({
      prefix: entry.prefix,
      methods: entry.methods,
      route: entry.route,
      exact: entry.exact === true,
      conditions: entry.conditions,
      precedence: entry.precedence ?? 0,
      conditionsKey: entry.conditionsKey ?? "",
      methodMismatch404: entry.methodMismatch404 === true,
      key,
      order: this.entries.length,
      hit: { route: entry.route },
    });
    const stored = this.entries[this.entries.length - 1]!;
    const same = this.byKey.get(key);
    if (same) same.push(stored);
    else this.byKey.set(key, [stored]);
    this.unsorted = true;
  }

  /** The entries in precedence order (sorted now if anything was added since). */
  private ordered(): Stored<R>[] {
    if (this.unsorted) {
      this.entries.sort(compare);
      this.unsorted = false;
      this.sorts++;
    }
    return this.entries;
  }

  /** The entry that `entry` would duplicate (same conditions, path, precedence and an overlapping method), if any. */
  conflict(entry: Omit<RouteEntry<R>, "route">): RouteEntry<R> | undefined {
    const key = this.caseInsensitive ? entry.prefix.toLowerCase() : entry.prefix;
    const methods = entry.methods;
    let first: Stored<R> | undefined;
    // Only entries with this path can clash; of several, the first in precedence order (as a
    // scan of the sorted table would find).
    for (const e of this.byKey.get(key) ?? []) {
      if (
        !!e.exact === !!entry.exact &&
        (e.conditionsKey ?? "") === (entry.conditionsKey ?? "") &&
        (e.precedence ?? 0) === (entry.precedence ?? 0) &&
        (e.methods === "*" || methods === "*" || [...methods].some((m) => (e.methods as ReadonlySet<string>).has(m))) &&
        (first === undefined || compare(e, first) < 0)
      )
        first = e;
    }
    return first;
  }

  /** `path` is the request's canonical path (pipeline/canonical-path.ts); `req` its headers and query. */
  match(method: string, path: string, req: RouteRequest = NO_REQUEST): MatchResult<R> {
    if (this.simple) return this.matchPath(method, path);
    let allowFrom: Stored<R>[] | undefined;
    let allowOf: Stored<R> | undefined;
    // The request's host is read only if some entry on the way asks for it.
    let host: string | undefined;
    let hostRead = false;
    if (this.caseInsensitive) path = path.toLowerCase();
    for (const e of this.ordered()) {
      const p = e.key;
      const hit = e.exact
        ? path === p
        : p === "/" || path === p || (path.length > p.length && path.startsWith(p) && path.charCodeAt(p.length) === 47);
      if (!hit) continue;
      const c = e.conditions;
      if (c !== undefined) {
        if (!hostRead && c.hostname !== undefined) {
          host = requestHost(req.headers);
          hostRead = true;
        }
        if (!conditionsMatch(c, req, host)) continue;
      }
      if (e.methods === "*" || e.methods.has(method)) return e.hit;
      if (e.methodMismatch404) continue;
      // 405 names the methods of the most specific entries the request met but for its method.
      if (allowOf === undefined || sameSpecificity(e, allowOf)) {
        allowOf = e;
        (allowFrom ??= []).push(e);
      }
    }
    return allowFrom && { allow: allowed(allowFrom) };
  }

  /** Longest prefix, then method: all a table without exact paths or conditions needs (the hot path). */
  private matchPath(method: string, path: string): MatchResult<R> {
    let allowFrom: Stored<R>[] | undefined;
    let allowLen = -1;
    if (this.caseInsensitive) path = path.toLowerCase();
    for (const e of this.ordered()) {
      const p = e.key;
      const hit =
        p === "/" || path === p || (path.length > p.length && path.startsWith(p) && path.charCodeAt(p.length) === 47);
      if (!hit) continue;
      if (e.methods === "*" || e.methods.has(method)) return e.hit;
      if (allowLen === -1 || p.length === allowLen) {
        allowLen = p.length;
        (allowFrom ??= []).push(e);
      }
    }
    return allowFrom && { allow: allowed(allowFrom) };
  }

  /** True when `match` reads nothing of the request but its method and path (no conditions). */
  get pathOnly(): boolean {
    return this.simple;
  }

  get size(): number {
    return this.entries.length;
  }

  list(): readonly RouteEntry<R>[] {
    return this.ordered();
  }
}

function allowed<R>(entries: Stored<R>[]): string[] {
  const allow = new Set<string>();
  for (const e of entries) for (const m of e.methods as ReadonlySet<string>) allow.add(m);
  return [...allow].sort();
}

/** Negative when `a` takes precedence over `b` (see the module comment for the order). */
function compare<R>(a: Stored<R>, b: Stored<R>): number {
  const [ak, al] = hostRank(a.conditions?.hostname);
  const [bk, bl] = hostRank(b.conditions?.hostname);
  return (
    bk - ak ||
    bl - al ||
    Number(!!b.exact) - Number(!!a.exact) ||
    b.prefix.length - a.prefix.length ||
    Number(b.methods !== "*") - Number(a.methods !== "*") ||
    (b.conditions?.headers.length ?? 0) - (a.conditions?.headers.length ?? 0) ||
    (b.conditions?.query.length ?? 0) - (a.conditions?.query.length ?? 0) ||
    (a.precedence ?? 0) - (b.precedence ?? 0) ||
    a.order - b.order
  );
}

function sameSpecificity<R>(a: Stored<R>, b: Stored<R>): boolean {
  return (
    a.key === b.key && !!a.exact === !!b.exact && (a.conditions?.hostname ?? "") === (b.conditions?.hostname ?? "")
  );
}

/**
 * Normalises a configured prefix: leading slash, no trailing slash (except root), and spelled the
 * way canonical request paths are (`/%C3%A9` for `/é`), or it could never match.
 */
export function normalizePrefix(prefix: string): string {
  let p = canonicalLiteral(prefix.trim());
  if (!p.startsWith("/")) p = "/" + p;
  while (p.length > 1 && p.endsWith("/")) p = p.slice(0, -1);
  return p;
}

/** An exact path keeps its trailing slash: Gateway API Exact "/foo/" does not match "/foo". */
export function normalizeExactPath(path: string): string {
  const p = canonicalLiteral(path.trim());
  return p.startsWith("/") ? p : "/" + p;
}
