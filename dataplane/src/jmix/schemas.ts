/**
 * The JMIX specification's own JSON Schemas (draft 2020-12, vendored unmodified in
 * dataplane/schema/jmix), compiled once. Every JSON file we build is checked against them before
 * it is stored, and every uploaded one before it is accepted.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);

export type JmixDocument = "manifest" | "metadata" | "audit" | "files";

const validators = new Map<JmixDocument, ValidateFunction>();

function validator(kind: JmixDocument): ValidateFunction {
  let v = validators.get(kind);
  if (!v) {
    const file = fileURLToPath(new URL(`../../schema/jmix/${kind}.schema.json`, import.meta.url));
    v = ajv.compile(JSON.parse(readFileSync(file, "utf8")) as object);
    validators.set(kind, v);
  }
  return v;
}

/** Problems with a document as `<file><json pointer>: message`, or [] when it conforms. */
export function checkJmix(kind: JmixDocument, doc: unknown, file: string): string[] {
  const v = validator(kind);
  if (v(doc)) return [];
  return (v.errors ?? []).map((e) => `${file}${e.instancePath || ""}: ${e.message ?? "is invalid"}`);
}
