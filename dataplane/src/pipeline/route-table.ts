/**
 * Per-network route table: longest matching prefix first, then method. Built once per config
 * generation so the hot path is a short loop over precomputed entries.
 */
import { canonicalLiteral } from "./canonical-path.js";

export interface RouteEntry<R> {
  prefix: string;
  methods: ReadonlySet<string> | "*";
  route: R;
}

export type MatchResult<R> = { route: R } | { allow: string[] } | undefined;

export class RouteTable<R> {
  private readonly entries: (RouteEntry<R> & { key: string })[] = [];

  /**
   * `caseInsensitive` (proxy.path_normalization.case_insensitive): prefixes match in any case.
   * Canonical paths are ASCII, so lower-casing keeps their length and the prefix slices stay right.
   */
  constructor(private readonly caseInsensitive = false) {}

  add(entry: RouteEntry<R>): void {
    this.entries.push({ ...entry, key: this.caseInsensitive ? entry.prefix.toLowerCase() : entry.prefix });
    // Longest prefix first; stable for equal lengths so config order breaks ties.
    this.entries.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The entry already claiming `method` on `prefix`, if any. */
  conflict(prefix: string, methods: ReadonlySet<string> | "*"): RouteEntry<R> | undefined {
    const key = this.caseInsensitive ? prefix.toLowerCase() : prefix;
    return this.entries.find(
      (e) =>
        e.key === key &&
        (e.methods === "*" || methods === "*" || [...methods].some((m) => (e.methods as ReadonlySet<string>).has(m))),
    );
  }

  /** `path` is the request's canonical path (pipeline/canonical-path.ts). */
  match(method: string, path: string): MatchResult<R> {
    let allowFrom: RouteEntry<R>[] | undefined;
    let allowLen = -1;
    if (this.caseInsensitive) path = path.toLowerCase();
    for (const e of this.entries) {
      const p = e.key;
      const hit =
        p === "/" || path === p || (path.length > p.length && path.startsWith(p) && path.charCodeAt(p.length) === 47);
      if (!hit) continue;
      if (e.methods === "*" || e.methods.has(method)) return { route: e.route };
      if (allowLen === -1 || p.length === allowLen) {
        allowLen = p.length;
        (allowFrom ??= []).push(e);
      }
    }
    if (!allowFrom) return undefined;
    const allow = new Set<string>();
    for (const e of allowFrom) for (const m of e.methods as ReadonlySet<string>) allow.add(m);
    return { allow: [...allow].sort() };
  }

  get size(): number {
    return this.entries.length;
  }

  list(): readonly RouteEntry<R>[] {
    return this.entries;
  }
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
