/**
 * What making the request path canonical costs per request (dataplane/src/pipeline/canonical-path.ts),
 * next to the dot-segment regex it replaced in the gateway. Run: node bench/canonical-path/run.mjs
 * (after `npm run build --workspace dataplane`). Prints ns per call, median of 5 runs.
 */
import { canonicalPath } from "../../dataplane/dist/pipeline/canonical-path.js";

const OLD_DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$)/i;
const PATHS = {
  "FHIR read (canonical)": "/fhir/Patient/123/_history/4",
  "WADO-RS frame (canonical, 113 chars)":
    "/dicomweb/studies/1.2.826.0.1.3680043.9.7133.3280065491876470/series/1.2.3.4.5.6/instances/1.2.3.4.5.6.7/frames/1",
  "merged slashes": "//fhir//Patient/123",
  "one encoded segment": "/files/a%20b.txt",
  "several escapes": "//fhir/%50atient/123%2a/x",
};

function nsPerCall(f) {
  const n = 1_000_000;
  let sink = 0;
  for (let i = 0; i < n / 10; i++) sink += f() ? 1 : 0; // warm up
  const runs = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += f() ? 1 : 0;
    runs.push(Number(process.hrtime.bigint() - t0) / n);
  }
  if (sink < 0) process.stdout.write(`${sink}\n`);
  return runs.sort((a, b) => a - b)[2].toFixed(0);
}

process.stdout.write("| path | canonicalPath ns | old dot-segment regex ns |\n| --- | --- | --- |\n");
for (const [name, p] of Object.entries(PATHS))
  process.stdout.write(
    `| ${name} | ${nsPerCall(() => canonicalPath(p))} | ${nsPerCall(() => OLD_DOT_SEGMENT.test(p))} |\n`,
  );
