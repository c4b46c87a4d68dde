/** The committed CRD YAML is exactly what the schema source generates. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { parse } from "yaml";
import { CRD_DIR, renderCrdFiles } from "../src/api/crd-gen.js";

test("crds/*.yaml match operator/src/api/v1alpha1.ts (run `make crds` after a schema change)", () => {
  const generated = renderCrdFiles();
  const committed = readdirSync(CRD_DIR).filter((f) => f.endsWith(".yaml"));
  assert.deepEqual(committed.sort(), [...generated.keys()].sort());
  for (const [name, text] of generated) assert.equal(readFileSync(CRD_DIR + name, "utf8"), text, name);
});

test("the CRDs use only what structural schemas allow", () => {
  for (const text of renderCrdFiles().values()) {
    const crd = parse(text) as { spec: { versions: { schema: { openAPIV3Schema: unknown } }[] } };
    const walk = (node: unknown, path: string): void => {
      if (!node || typeof node !== "object") return;
      for (const [k, v] of Object.entries(node)) {
        assert.ok(
          !["const", "patternProperties", "$schema", "$id"].includes(k),
          `${path}.${k} is not allowed in a CRD`,
        );
        if (k === "additionalProperties")
          assert.notEqual(v, false, `${path}: additionalProperties: false is not allowed`);
        walk(v, `${path}.${k}`);
      }
    };
    walk(crd.spec.versions[0]!.schema.openAPIV3Schema, "openAPIV3Schema");
  }
});

test("a CR may name every endpoint and backend type the data plane registers, and only those", () => {
  // Regression: storage, jmix_backend and mock_dicom were refused by the CRD, and `jmix`, which the
  // data plane has only as an endpoint, was offered as a backend.
  type Node = { enum?: string[]; properties?: Record<string, Node>; items?: Node };
  const enumAt = (file: string, ...path: string[]): string[] => {
    const crd = parse(readFileSync(CRD_DIR + file, "utf8")) as {
      spec: { versions: { schema: { openAPIV3Schema: Node } }[] };
    };
    let node: Node | undefined = crd.spec.versions[0]!.schema.openAPIV3Schema;
    for (const step of path) node = step === "[]" ? node?.items : node?.properties?.[step];
    return [...(node?.enum ?? [])].sort();
  };
  assert.deepEqual(enumAt("harmonyendpoints.yaml", "spec", "service"), [
    "dicom",
    "dicomweb",
    "echo",
    "fhir",
    "http",
    "jmix",
  ]);
  assert.deepEqual(enumAt("harmonypipelines.yaml", "spec", "backends", "[]", "service"), [
    "dicom",
    "dicomweb",
    "echo",
    "fhir",
    "http",
    "jmix_backend",
    "mock_dicom",
    "redirect",
    "static",
    "storage",
  ]);
});
