/**
 * Gateway API hostname semantics (pure): a wildcard `*.example.com` matches one or more labels in
 * front of `example.com`, never `example.com` itself; a route's hostnames are intersected with its
 * listener's, keeping the more specific side of each matching pair.
 */

/** Does `host` (exact or wildcard) fall inside `pattern` (exact or wildcard)? */
export function within(host: string, pattern: string): boolean {
  const h = host.toLowerCase();
  const p = pattern.toLowerCase();
  if (!p.startsWith("*.")) return h === p;
  const suffix = p.slice(1); // ".example.com"
  if (h.startsWith("*.")) return h.length > p.length ? h.endsWith(suffix) : h === p;
  return h.endsWith(suffix) && h.length > suffix.length;
}

/**
 * The hostnames a route serves on a listener: undefined when it may serve any, [] when none match
 * (the route does not attach there), otherwise the intersection.
 */
export function intersect(listener: string | undefined, route: readonly string[] | undefined): string[] | undefined {
  const r = route ?? [];
  if (!listener) return r.length ? [...r] : undefined;
  if (r.length === 0) return [listener];
  const out = new Set<string>();
  for (const h of r) {
    if (within(h, listener)) out.add(h);
    else if (within(listener, h)) out.add(listener);
  }
  return [...out];
}
