/**
 * JSON Schema checking with ajv, turning ajv's errors into located Problems. The config schema is
 * the committed file (the same one editors use); plugin option schemas come from the plugins.
 */
import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import type { TSchema } from "@sinclair/typebox";
import { SCHEMA_FILE } from "./schema-gen.js";

// ajv-formats is CommonJS with a default export; under NodeNext it arrives wrapped.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

// verbose: an "anyOf" error then carries its parentSchema, which describeAnyOf needs to name the
// allowed values (errors are only turned into messages here; their data never reaches a log).
const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true, verbose: true });
addFormats(ajv);

let configValidator: ValidateFunction | undefined;
const pluginValidators = new WeakMap<TSchema, ValidateFunction>();

export interface SchemaIssue {
  path: (string | number)[];
  message: string;
  unknownKey: boolean;
}

export function checkConfigSchema(doc: unknown): SchemaIssue[] {
  configValidator ??= ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as object);
  configValidator(doc);
  return issues(configValidator.errors);
}

/** Validates (and fills defaults into) plugin options. */
export function checkOptions(schema: TSchema, options: unknown): SchemaIssue[] {
  let v = pluginValidators.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    pluginValidators.set(schema, v);
  }
  v(options);
  return issues(v.errors);
}

function issues(errors: ErrorObject[] | null | undefined): SchemaIssue[] {
  if (!errors) return [];
  const out: SchemaIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // Union branches produce one error per branch; the "anyOf" summary is the useful one.
    if (
      e.schemaPath.includes("/anyOf/") &&
      errors.some((o) => o.keyword === "anyOf" && o.instancePath === e.instancePath)
    )
      continue;
    const path = e.instancePath
      .split("/")
      .slice(1)
      .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
    let message: string;
    let unknownKey = false;
    switch (e.keyword) {
      case "additionalProperties":
        path.push(String(e.params.additionalProperty));
        message = "unknown key";
        unknownKey = true;
        break;
      case "required":
        path.push(String(e.params.missingProperty));
        message = "is required";
        break;
      case "enum":
        message = `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
        break;
      case "anyOf":
        message = describeAnyOf(e);
        break;
      case "const":
        message = `must be ${JSON.stringify(e.params.allowedValue)}`;
        break;
      default:
        message = e.message ?? e.keyword;
    }
    const key = path.join("/") + "|" + message;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path, message, unknownKey });
  }
  return out;
}

function describeAnyOf(e: ErrorObject): string {
  const schema = e.parentSchema as { anyOf?: { const?: unknown; type?: string }[] } | undefined;
  const consts = schema?.anyOf?.map((s) => s.const).filter((c) => c !== undefined);
  if (consts && consts.length === schema?.anyOf?.length) {
    return `must be one of ${consts.map((c) => JSON.stringify(c)).join(", ")}`;
  }
  const types = schema?.anyOf?.map((s) => s.type ?? "object");
  return `must be ${types?.join(" or ") ?? "a different shape"}`;
}
