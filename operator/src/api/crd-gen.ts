/** Writes crds/<plural>.yaml from the schema source (`npm run gen:crds -w operator`). */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { KINDS, crdFor } from "./crds.js";

export const CRD_DIR = fileURLToPath(new URL("../../../crds/", import.meta.url));

export function renderCrdFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const k of KINDS) {
    out.set(
      `${k.plural}.yaml`,
      "# Generated from operator/src/api/v1alpha1.ts by `make crds`; do not edit.\n" +
        stringify(crdFor(k), { lineWidth: 0, sortMapEntries: false }),
    );
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [name, text] of renderCrdFiles()) {
    writeFileSync(CRD_DIR + name, text);
    process.stdout.write(`wrote crds/${name}\n`);
  }
}
