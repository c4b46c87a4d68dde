/**
 * Rewrites absolute URLs inside a JSON document from one base to another, textually: only string
 * values that start with the base (followed by `/`, `?`, `#` or the closing quote) change, and every
 * other byte stays as the upstream sent it. A parse-and-reserialise pass would reorder nothing but
 * would still change number formatting and whitespace, and clients that compare bodies (or sign
 * them) should see the upstream's bytes wherever no URL was touched.
 */
export function jsonUrlRewriter(from: readonly string[], to: string): (body: Buffer) => Buffer {
  const bases = [...new Set(from.map((b) => b.replace(/\/+$/, "")))].filter((b) => b !== to);
  if (bases.length === 0) return (b) => b;
  // A JSON string may escape `/` as `\/`; match both spellings.
  const alternatives = bases.flatMap((b) => {
    const plain = JSON.stringify(b).slice(1, -1);
    return [plain, plain.replaceAll("/", "\\/")];
  });
  const pattern = new RegExp(`"(${[...new Set(alternatives)].map(escapeRegExp).join("|")})(?=[/?#"]|\\\\/)`, "g");
  const replacement = `"${JSON.stringify(to).slice(1, -1)}`;
  return (body) => {
    const text = body.toString("utf8");
    pattern.lastIndex = 0;
    if (!pattern.test(text)) return body;
    pattern.lastIndex = 0;
    return Buffer.from(text.replace(pattern, replacement), "utf8");
  };
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** One URL-valued header (Location, Content-Location) moved from the upstream's base to ours. */
export function rewriteUrlHeader(
  headers: Record<string, unknown>,
  name: string,
  from: readonly string[],
  to: string,
): void {
  const v = headers[name];
  if (typeof v !== "string") return;
  for (const base of from) {
    const b = base.replace(/\/+$/, "");
    if (v === b || (v.startsWith(b) && "/?#".includes(v.charAt(b.length)))) {
      headers[name] = to + v.slice(b.length);
      return;
    }
  }
}
