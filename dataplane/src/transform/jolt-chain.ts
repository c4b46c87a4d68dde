/**
 * A JOLT chain (Chainr): a list of `{ operation, spec }` checked once at load and run in order
 * over each body. The operations: jolt.ts and jolt-modify.ts.
 */
import { applyDefault, cardinality, remove, shift, sort } from "./jolt.js";
import { checkModify, modify, modifyMode } from "./jolt-modify.js";
import { JoltError, isObj, type Json } from "./jolt-paths.js";

export const OPERATIONS = [
  "shift",
  "default",
  "remove",
  "cardinality",
  "sort",
  "modify-overwrite-beta",
  "modify-default-beta",
  "modify-define-beta",
] as const;

export interface ChainStep {
  operation: string;
  spec?: Json;
}

/** Checks a chain once, at load; returns problems as messages with their step index. */
export function checkChain(chain: unknown): string[] {
  if (!Array.isArray(chain)) return ["a JOLT spec is a list of { operation, spec }"];
  const problems: string[] = [];
  chain.forEach((s: unknown, i) => {
    if (!isObj(s)) return void problems.push(`[${i}]: not an object`);
    if (typeof s.operation !== "string") return void problems.push(`[${i}].operation: must be a string`);
    const op = s.operation.replace(/^com\.bazaarvoice\.jolt\./, "").toLowerCase();
    const known: Record<string, string> = {
      shiftr: "shift",
      defaultr: "default",
      removr: "remove",
      sortr: "sort",
      cardinalitytransform: "cardinality",
    };
    const name = known[op] ?? op;
    const mode = modifyMode(op);
    // Modify specs are compiled now, so a bad key or an unknown function fails the config load.
    if (mode && isObj(s.spec)) problems.push(...checkModify(s.spec, mode).map((p) => `[${i}].spec: ${p}`));
    else if (!mode && !(OPERATIONS as readonly string[]).includes(name))
      problems.push(`[${i}].operation: "${s.operation}" is not supported (supported: ${OPERATIONS.join(", ")})`);
    else if (name !== "sort" && !isObj(s.spec)) problems.push(`[${i}].spec: must be an object`);
  });
  return problems;
}

export function chainr(input: Json, chain: ChainStep[]): Json {
  let v = input;
  for (const step of chain) {
    const op = step.operation.replace(/^com\.bazaarvoice\.jolt\./, "").toLowerCase();
    const spec = step.spec ?? null;
    const mode = modifyMode(op);
    if (op === "shift" || op === "shiftr") v = shift(v, spec);
    else if (op === "default" || op === "defaultr") v = applyDefault(v, spec);
    else if (op === "remove" || op === "removr") v = remove(v, spec);
    else if (op === "cardinality" || op === "cardinalitytransform") v = cardinality(v, spec);
    else if (op === "sort" || op === "sortr") v = sort(v);
    else if (mode) v = modify(v, spec, mode);
    else throw new JoltError(`unsupported operation ${step.operation}`);
  }
  return v;
}
