/**
 * "Did you mean": the closest known option key to a misspelt one, and the option keys a plugin's
 * schema knows at a given depth. Used for unknown option keys, which the operator refuses (the data
 * plane only warns, and a misspelt `audience` switches the audience check off).
 */
import type { TSchema } from "@sinclair/typebox";

/** Optimal string alignment distance (Damerau-Levenshtein with adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest candidate within a third of the key's length (at least 1, at most 3 edits), if any. */
export function closest(key: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(key.length / 3)));
  let best: { name: string; d: number } | undefined;
  for (const c of [...candidates].sort()) {
    const d = editDistance(key.toLowerCase(), c.toLowerCase());
    if (d <= limit && (!best || d < best.d)) best = { name: c, d };
  }
  return best?.name;
}

type Schema = TSchema & {
  properties?: Record<string, Schema>;
  anyOf?: Schema[];
  allOf?: Schema[];
  items?: Schema;
  additionalProperties?: Schema | boolean;
};

/** Keys the schema knows for the object at `path` below it (unions contribute every branch's). */
export function keysAt(schema: TSchema, path: readonly (string | number)[]): Set<string> {
  let level: Schema[] = [schema];
  const expand = (s: Schema[]): Schema[] => s.flatMap((x) => [x, ...expand([...(x.anyOf ?? []), ...(x.allOf ?? [])])]);
  for (const part of path) {
    level = expand(level).flatMap((s) => {
      if (typeof part === "number") return s.items ? [s.items] : [];
      const p = s.properties?.[part];
      if (p) return [p];
      return typeof s.additionalProperties === "object" ? [s.additionalProperties] : [];
    });
  }
  return new Set(expand(level).flatMap((s) => Object.keys(s.properties ?? {})));
}
