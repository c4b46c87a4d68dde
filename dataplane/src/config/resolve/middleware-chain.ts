/**
 * A pipeline's middleware: one list (the response passes back through it like an onion) or
 * `left`/`right` lists, each name an instance, a bare type name (0.4: that type with default
 * options), or a documented type this build lacks; and the middleware its endpoints require.
 */
import type { PipelineSection } from "../schema.js";
import { isHarmonyMiddlewareType } from "./plugin.js";
import type { PipelineScope, Verdict } from "./pipeline-scope.js";
import type { KeyPath } from "./report.js";

/** Instance names in run order, request side (left) and response side (right). */
export function middlewareChain(
  scope: PipelineScope,
  v: Verdict,
  p: PipelineSection,
): { left: string[]; right: string[] } {
  let left: string[];
  let right: string[];
  const mw = p.middleware ?? [];
  if (Array.isArray(mw)) {
    left = [...mw];
    right = [...mw].reverse(); // one list: the response passes back through it like an onion
  } else {
    left = [...(mw.left ?? [])];
    right = [...(mw.right ?? [])];
  }
  if (Array.isArray(mw)) checkNames(scope, v, left, ["middleware"]);
  else {
    checkNames(scope, v, left, ["middleware", "left"]);
    checkNames(scope, v, right, ["middleware", "right"]);
  }
  for (const e of p.endpoints) {
    const need = scope.endpoints.get(e)?.plugin;
    const required = need?.kind === "endpoint" ? need.requiresMiddleware : undefined;
    if (!required) continue;
    const has = (list: string[]) => list.some((m) => scope.middleware.get(m)?.plugin.type === required);
    if (!has(left) || !has(right))
      v.err(["middleware"], `endpoint "${e}" (${need!.type}) needs a "${required}" middleware in this pipeline`);
  }
  return { left, right };
}

function checkNames(scope: PipelineScope, v: Verdict, list: string[], side: KeyPath): void {
  const { doc, registry, middleware } = scope;
  list.forEach((m, i) => {
    if (middleware.has(m)) return;
    if (doc.middleware?.[m]) {
      v.failed("middleware", m); // reported on the instance
      return;
    }
    // 0.4 compatibility: a bare type name stands for that type with default options.
    const plugin = registry.middleware(m);
    if (plugin) {
      const r = scope.plugins.resolve(
        ["middleware", m],
        m,
        m,
        {},
        plugin,
        "middleware type",
        registry.middlewareTypes(),
      );
      if (r) middleware.set(m, r);
      else v.ok = false;
    } else if (isHarmonyMiddlewareType(m)) {
      v.missing.push(m);
    } else {
      v.err([...side, i], `middleware "${m}" is not defined (no [middleware.${m}] and no built-in type of that name)`);
    }
  });
}
