/**
 * A copy of the document without the values the schema refused, so the sections' resolvers can
 * trust the schema's types and still report their own problems about everything else (a value of
 * the wrong type would make them throw: a crash instead of a list). A refused value inside an array
 * takes its whole array with it: the resolvers read arrays as a whole.
 */
import type { SchemaIssue } from "../schema-check.js";

type Node = Record<string, unknown> | unknown[];

export function withoutRefused(doc: unknown, issues: readonly SchemaIssue[]): unknown {
  const refused = issues.filter((i) => !i.unknownKey && i.path.length > 0);
  if (refused.length === 0) return doc;
  const copy = structuredClone(doc);
  for (const issue of refused) remove(copy, issue.path);
  return copy;
}

function remove(root: unknown, path: readonly (string | number)[]): void {
  // The deepest key that belongs to a table (not an array element) is the one to drop.
  let cut = path.length;
  const parents: unknown[] = [];
  let node: unknown = root;
  for (const key of path) {
    parents.push(node);
    if (node === null || typeof node !== "object") return; // already gone with an earlier issue
    node = (node as Record<string, unknown>)[String(key)];
  }
  while (cut > 0 && Array.isArray(parents[cut - 1])) cut--;
  if (cut === 0) return;
  const parent = parents[cut - 1] as Node;
  if (parent && typeof parent === "object" && !Array.isArray(parent)) delete parent[String(path[cut - 1])];
}
