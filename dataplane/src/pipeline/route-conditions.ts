/**
 * Turns a RouteSpec's hostnames, header and query matches into route-table conditions: one
 * variant per hostname (each ranks by its own hostname), and a key that tells two routes with the
 * same conditions apart from two that merely share a path (the duplicate check at load).
 */
import type { RouteSpec } from "../plugins/types.js";
import { firstPerName, valueMatcher, type Conditions, type ValueMatchSpec } from "./route-match.js";

export interface RouteVariant {
  conditions?: Conditions;
  conditionsKey?: string;
}

/** Throws when a regex is refused (the endpoint's check reports it first, with its option path). */
export function routeConditions(spec: RouteSpec): RouteVariant[] {
  const headers = firstPerName(spec.headers ?? [], true);
  const query = firstPerName(spec.query ?? [], false);
  const hosts = [...new Set((spec.hostnames ?? []).map((h) => h.toLowerCase()))];
  if (hosts.length === 0 && headers.length === 0 && query.length === 0) return [{}]; // the fast path
  const headerMatchers = headers.map((m) => valueMatcher(m, true));
  const queryMatchers = query.map((m) => valueMatcher(m, false));
  const key = (h: string | undefined) =>
    [
      h ? `host ${h}` : "",
      headers.length ? `headers ${describe(headers, true)}` : "",
      query.length ? `query ${describe(query, false)}` : "",
    ]
      .filter(Boolean)
      .join(", ");
  return (hosts.length ? hosts : [undefined]).map((hostname) => ({
    conditions: { hostname, headers: headerMatchers, query: queryMatchers },
    conditionsKey: key(hostname),
  }));
}

/** Order-independent spelling of a match list. */
function describe(list: ValueMatchSpec[], fold: boolean): string {
  return list
    .map((m) => `${fold ? m.name.toLowerCase() : m.name}${m.type === "regex" ? "~" : "="}${JSON.stringify(m.value)}`)
    .sort()
    .join("&");
}
