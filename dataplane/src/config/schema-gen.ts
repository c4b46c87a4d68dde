/** Writes the committed JSON Schema from the TypeBox source (`npm run gen:schema -w dataplane`). */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configJsonSchema } from "./schema.js";

export const SCHEMA_FILE = fileURLToPath(new URL("../../schema/harmony-config.schema.json", import.meta.url));

export function renderSchemaFile(): string {
  return JSON.stringify(configJsonSchema(), null, 2) + "\n";
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_FILE, renderSchemaFile());
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
}
