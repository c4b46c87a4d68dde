/** Reads and checks a JOLT spec file named in middleware options, at config load. */
import { posix, isAbsolute } from "node:path";
import type { BuildContext, OptionProblem } from "../plugins/types.js";
import { checkChain, type ChainStep } from "./jolt-chain.js";

export function loadSpec(
  o: { spec_path: string },
  ctx: BuildContext,
): { chain?: ChainStep[]; problems: OptionProblem[] } {
  const path = isAbsolute(o.spec_path) ? o.spec_path : posix.join(ctx.transformsDir, o.spec_path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(ctx.readFile(path).toString("utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      problems: [
        {
          path: ["spec_path"],
          message: code ? `cannot read ${o.spec_path}: ${code}` : `${o.spec_path} is not JSON: ${(e as Error).message}`,
        },
      ],
    };
  }
  const problems = checkChain(parsed).map((m) => ({ path: ["spec_path"], message: `${o.spec_path}${m}` }));
  return problems.length ? { problems } : { chain: parsed as ChainStep[], problems: [] };
}
