#!/usr/bin/env node
// Turns `npm sbom --sbom-format cyclonedx` output for one workspace into the SBOM of its image:
//
//   npm sbom ... --workspace <ws> | node scripts/sbom.mjs <epoch-seconds> <bom-ref> > out.cdx.json
//
// npm describes the monorepo root (named after whatever folder it ran in) with the workspace as a
// library under it; the image holds the workspace alone, so the workspace's component (<bom-ref>,
// e.g. @harmony/dataplane@0.1.0) becomes the document's subject, as an application, and the root
// goes. npm also stamps each run with the current time and a random serial number, so two builds of
// one commit would ship different SBOMs beside identical images: the time becomes <epoch-seconds>
// (the build's SOURCE_DATE_EPOCH), lists are sorted, and the serial number is a UUID derived from the
// content (CycloneDX asks only that it be a unique RFC 4122 URN per distinct BOM).
import { createHash } from "node:crypto";
import { text } from "node:stream/consumers";

const [epochArg, subjectRef] = process.argv.slice(2);
const epoch = Number(epochArg);
if (!Number.isSafeInteger(epoch) || epoch < 0 || !subjectRef) {
  console.error("usage: sbom.mjs <epoch-seconds> <bom-ref> < sbom.json");
  process.exit(2);
}
const fail = (msg) => {
  console.error(`sbom: ${msg}`);
  process.exit(1);
};

const bom = JSON.parse(await text(process.stdin));
if (bom.bomFormat !== "CycloneDX") fail("the input is not a CycloneDX document");
const rootRef = bom.metadata?.component?.["bom-ref"];
const subject = bom.components?.find((c) => c["bom-ref"] === subjectRef);
if (!subject) fail(`${subjectRef} is not a component of the input`);

// The workspace's own name (npm names a workspace component after its folder), as the subject.
const at = subjectRef.lastIndexOf("@");
subject.name = subjectRef.slice(0, at);
subject.type = "application";
bom.metadata.component = subject;
bom.components = bom.components.filter((c) => c !== subject);
bom.dependencies = (bom.dependencies ?? []).filter((d) => d.ref !== rootRef);

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
bom.metadata.timestamp = new Date(epoch * 1000).toISOString();
bom.components.sort((a, b) => cmp(a["bom-ref"], b["bom-ref"]));
bom.dependencies.sort((a, b) => cmp(a.ref, b.ref));
for (const d of bom.dependencies) d.dependsOn?.sort();

delete bom.serialNumber;
const h = createHash("sha256").update(JSON.stringify(bom)).digest("hex");
// Shaped as a name-based UUID: version nibble 5, RFC 4122 variant bits.
const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
const out = { bomFormat: bom.bomFormat, specVersion: bom.specVersion, serialNumber: `urn:uuid:${uuid}`, ...bom };
process.stdout.write(JSON.stringify(out, null, 2) + "\n");
