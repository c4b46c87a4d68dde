/**
 * `path_filter`: which paths (below the endpoint's prefix) a pipeline serves. The original's form
 * is a list of allowed patterns (`rules = ["/Patient/{id}", "/api/{*rest}"]`): anything else is
 * 404. The newer form is an ordered list of `{ allow = ... }` / `{ deny = ... }`: the first match
 * decides, a deny is 403, no match is 404. Real statuses (the original answered 200 with the
 * intended status inside the body).
 */
import { Type, type Static } from "@sinclair/typebox";
import type { MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { RuleError, pathPattern, type PathPattern } from "../policy/rules.js";

const Options = Type.Object(
  {
    rules: Type.Array(
      Type.Union([
        Type.String(),
        Type.Object({ allow: Type.String() }, { additionalProperties: false }),
        Type.Object({ deny: Type.String() }, { additionalProperties: false }),
      ]),
      { minItems: 1, description: "Allowed patterns, or ordered { allow } / { deny } entries." },
    ),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

function compile(o: Options): { rules: { allow: boolean; re: PathPattern }[]; problems: OptionProblem[] } {
  const problems: OptionProblem[] = [];
  const rules: { allow: boolean; re: PathPattern }[] = [];
  o.rules.forEach((r, i) => {
    const allow = typeof r === "string" || "allow" in r;
    const pattern = typeof r === "string" ? r : "allow" in r ? r.allow : r.deny;
    try {
      rules.push({ allow, re: pathPattern(pattern) });
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      problems.push({ path: ["rules", i], message: e.message });
    }
  });
  return { rules, problems };
}

export const pathFilter: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "path_filter",
  options: Options,
  check: (o) => compile(o).problems,
  create: (o) => {
    const { rules } = compile(o);
    return {
      onRequest(rctx) {
        // The canonical path (pipeline/canonical-path.ts) is what the upstream gets: decoded where
        // that is safe, slashes merged, and never with dot segments or encoded separators (those
        // were refused or resolved before routing), so a spelling cannot slip past these rules.
        const sub = rctx.subpath;
        const path = sub.length > 1 && sub.endsWith("/") ? sub.slice(0, -1) : sub;
        const hit = rules.find((r) => r.re.test(path, rctx.caseInsensitivePaths));
        if (!hit) throw new HttpError(404, `${rctx.path} is not served here`, { type: problemType("path-filtered") });
        if (!hit.allow) throw new HttpError(403, `${rctx.path} is not allowed`, { type: problemType("path-filtered") });
      },
    };
  },
};
