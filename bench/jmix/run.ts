/**
 * JMIX package build throughput for a large study, next to a plain WADO-RS retrieve of the same
 * study from the same Orthanc in the same run (the reference: what moving the bytes alone costs).
 *
 *   direct     GET {orthanc}/dicom-web/studies/{uid} (multipart), read to the end
 *   jmix       GET {gateway}/api/jmix?studyInstanceUid={uid}: WADO-RS from Orthanc, every instance
 *              written to the store (hashed), JSON files, then the zip streamed back, read to the end
 *   jmix-nohash  the same with ?skip_hashing=true
 * Each round builds into a fresh store (a built study is served from the index afterwards).
 * Reported: MB/s (10^6 bytes of study per second, median over rounds), ratio to direct, and the
 * data plane's peak RSS over the whole run.
 *
 *   node --import tsx bench/jmix/run.ts [--study-mib 1024] [--instance-mib 64] [--rounds 2]
 */
import { parseArgs } from "node:util";
import { request } from "node:http";
import { join } from "node:path";
import { startOrthanc } from "../../test/peers/dicom-peers.js";
import { makeInstance, uid } from "../../test/dicom-files.js";
import { baseConfig, memoryOf, startDataplane, writeTree } from "../../dataplane/test/helpers.js";

const { values: a } = parseArgs({
  options: {
    "study-mib": { type: "string", default: "1024" },
    "instance-mib": { type: "string", default: "64" },
    rounds: { type: "string", default: "2" },
  },
});
const STUDY_MIB = Number(a["study-mib"]);
const INSTANCE_MIB = Number(a["instance-mib"]);
const ROUNDS = Number(a.rounds);
const STUDY = uid("jmix-bench-study");
const SERIES = uid("jmix-bench-series");

/** Reads a response to the end; returns bytes and seconds. */
function get(url: string): Promise<{ status: number; bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    request(url, { headers: { accept: 'multipart/related; type="application/dicom", application/zip' } }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => (bytes += c.length));
      res.on("end", () =>
        resolve({ status: res.statusCode!, bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }),
      );
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const orthanc = await startOrthanc();
  const stops: (() => Promise<unknown>)[] = [() => orthanc.stop()];
  try {
    const n = Math.max(1, Math.round(STUDY_MIB / INSTANCE_MIB));
    let studyBytes = 0;
    for (let i = 0; i < n; i++) {
      const inst = makeInstance({
        study: STUDY,
        series: SERIES,
        sop: uid(`jmix-bench-${i}`),
        patientId: "BENCH",
        patientName: "Bench^Study",
        pixelBytes: INSTANCE_MIB * 1024 * 1024,
      });
      studyBytes += inst.length;
      const r = await fetch(`${orthanc.http}/instances`, { method: "POST", body: inst });
      if (!r.ok) throw new Error(`Orthanc refused instance ${i}: ${r.status}`);
    }
    // A fresh store per round and path: a built study is served from the index afterwards.
    const jmixPipeline = (name: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_b"]
backends = ["orthanc"]

[endpoints.${name}_in]
service = "jmix"
options = { path_prefix = "/${name}" }

[middleware.${name}_b]
type = "jmix_builder"
options = { store_dir = "store-${name}" }
`;
    const pipelines = [];
    for (let r = 0; r < ROUNDS; r++) pipelines.push(jmixPipeline(`j${r}`), jmixPipeline(`n${r}`));
    const dir = writeTree({
      "config.toml": baseConfig(
        pipelines.join("") +
          `
[backends.orthanc]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}", headers_timeout_ms = 600000, body_timeout_ms = 600000 }
`,
      ),
    });
    const dp = await startDataplane(join(dir, "config.toml"));
    stops.unshift(() => dp.stop());
    const rss0 = memoryOf(dp.pid).rss;
    const mbps: Record<string, number[]> = { direct: [], jmix: [], "jmix-nohash": [] };
    for (let r = 0; r < ROUNDS; r++) {
      const runs: [string, string][] = [
        ["direct", `${orthanc.dicomweb}/studies/${STUDY}`],
        ["jmix", dp.url("default", `/j${r}/api/jmix?studyInstanceUid=${STUDY}`)],
        ["jmix-nohash", dp.url("default", `/n${r}/api/jmix?studyInstanceUid=${STUDY}&skip_hashing=true`)],
      ];
      for (const [name, url] of runs) {
        const res = await get(url).catch((e: Error) => {
          throw new Error(`${name}: ${e.message}\n${dp.stderr().slice(-3000)}\n${JSON.stringify(dp.logs.slice(-5))}`);
        });
        if (res.status !== 200 || res.bytes < studyBytes) throw new Error(`${name}: ${res.status}, ${res.bytes} bytes`);
        mbps[name]!.push(studyBytes / 1e6 / res.seconds);
        process.stderr.write(`round ${r + 1} ${name}: ${res.seconds.toFixed(2)} s\n`);
      }
    }
    const mem = memoryOf(dp.pid);
    const direct = median(mbps.direct!);
    say(`\nJMIX build of a ${(studyBytes / 2 ** 20).toFixed(0)} MiB study (${n} instances), ${ROUNDS} round(s)\n`);
    say("| path | MB/s (median) | ratio to direct |");
    say("|---|---|---|");
    for (const [name, xs] of Object.entries(mbps))
      say(`| ${name} | ${median(xs).toFixed(1)} | ${(median(xs) / direct).toFixed(2)} |`);
    say(
      `\ndata plane RSS: ${(rss0 / 2 ** 20).toFixed(0)} MiB at start, peak ${(mem.hwm / 2 ** 20).toFixed(0)} MiB` +
        ` (instances spool to disk as they arrive)`,
    );
  } finally {
    for (const s of stops) await s().catch(() => undefined);
  }
}

await main();
