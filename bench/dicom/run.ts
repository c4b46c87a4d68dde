/**
 * DICOM throughput through the gateway next to the same peer direct, in one run:
 *
 *   C-FIND   N queries, one association, dcmjs-dimse as the SCU: direct to Orthanc's DIMSE port,
 *            and through the gateway's SCP (`dicom` endpoint → `dicom` backend, a DIMSE proxy).
 *   C-STORE  N small instances, one association, the same two ways.
 *   WADO-RS  a study of S MiB retrieved R times: direct from Orthanc's DICOMweb, and through the
 *            gateway (`dicomweb` endpoint → `dicomweb` backend).
 *
 * Rounds interleave direct and gateway; medians are reported with the ratio gateway/direct.
 * C-FIND and C-STORE also run through a second SCP whose `dicom` backend has no association pool
 * (`max_associations = 0`, one association per operation: "nopool"), so the pool's effect is
 * measured in the same run; each reports ops/s and the median and p99 time per operation (the
 * gap between consecutive final responses on the client's association).
 *
 *   C-GET    (--only get) N WADO-RS retrieves of a one-instance study through the `dicom` backend
 *            (C-GET to Orthanc), next to Orthanc's own WADO-RS of the same study.
 *
 * --base-cli PATH runs a second data plane from another build (bench/http-passthrough/build-base.sh
 * COMMIT prints one) with the same config as a fourth target, "base": before and after in one run.
 *
 *   node --import tsx bench/dicom/run.ts [--rounds 5] [--finds 200] [--stores 200] [--study-mib 256]
 *     [--store-kib 64] [--gets 20] [--only find,store,wado,get] [--store-backend dicomweb|dicom]
 *     [--base-cli dataplane/.tmp/base-<sha>/dist/cli.js]
 */
import { parseArgs } from "node:util";
import { loadavg } from "node:os";
import { request } from "node:http";
import { join } from "node:path";
import { startOrthanc } from "../../test/peers/dicom-peers.js";
import { makeInstance, multipartRelated, uid } from "../../test/dicom-files.js";
import { baseConfig, freePort, memoryOf, startDataplane, writeTree } from "../../dataplane/test/helpers.js";
import { Client, RawDataset, constants, requests } from "../../dataplane/src/protocols/dimse.js";
import { parsePart10 } from "../../dataplane/src/protocols/part10.js";

const { values: a } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    finds: { type: "string", default: "200" },
    stores: { type: "string", default: "200" },
    "study-mib": { type: "string", default: "256" },
    retrieves: { type: "string", default: "3" },
    "store-kib": { type: "string", default: "64" },
    only: { type: "string", default: "find,store,wado" },
    "store-backend": { type: "string", default: "dicomweb" },
    gets: { type: "string", default: "20" },
    "base-cli": { type: "string", default: "" },
  },
});
const ROUNDS = Number(a.rounds);
const FINDS = Number(a.finds);
const STORES = Number(a.stores);
const STUDY_MIB = Number(a["study-mib"]);
const RETRIEVES = Number(a.retrieves);
const STORE_KIB = Number(a["store-kib"]);
const GETS = Number(a.gets);
const BASE_CLI = a["base-cli"];
/** Which operations to run: a C-STORE-only run measures the SCP's receive path alone. */
const ONLY = new Set(a.only.split(","));
/**
 * Where the gateway's SCP relays C-STOREs: "dicomweb" (STOW-RS to Orthanc, the modality → DICOMweb
 * bridge) or "dicom" (C-STORE to Orthanc's DIMSE port, the DIMSE proxy).
 */
const STORE_BACKEND = a["store-backend"];

function association(
  host: string,
  port: number,
  called: string,
  add: (c: InstanceType<typeof Client>) => void,
): Promise<void> {
  const c = new Client();
  add(c);
  return new Promise((resolve, reject) => {
    c.on("networkError", reject);
    c.on("associationRejected", () => reject(new Error("association rejected")));
    c.on("closed", () => resolve());
    c.send(host, port, "BENCH", called, { associationTimeout: 600_000, pduTimeout: 600_000 });
  });
}

/** Per-operation latencies of the last finds()/stores() call, in ms. */
let lastLatencies: number[] = [];
function stopwatch(): () => void {
  let t = process.hrtime.bigint();
  lastLatencies = [];
  return () => {
    const now = process.hrtime.bigint();
    lastLatencies.push(Number(now - t) / 1e6);
    t = now;
  };
}

async function finds(port: number, called: string): Promise<{ ops: number; matches: number }> {
  let matches = 0;
  let ok = 0;
  const lap = stopwatch();
  await association("127.0.0.1", port, called, (c) => {
    for (let i = 0; i < FINDS; i++) {
      const r = requests.CFindRequest.createStudyFindRequest({
        PatientID: "",
        StudyInstanceUID: "",
        PatientName: "Bench^Find",
      });
      r.on("response", (x: { getStatus(): number; hasDataset(): boolean }) => {
        if (x.getStatus() === constants.Status.Pending && x.hasDataset()) matches++;
        if (x.getStatus() === constants.Status.Success) {
          ok++;
          lap();
        }
      });
      c.addRequest(r);
    }
  });
  if (ok !== FINDS) throw new Error(`${FINDS - ok} C-FINDs did not succeed`);
  return { ops: ok, matches };
}

async function stores(port: number, called: string, round: number, label: string): Promise<number> {
  let ok = 0;
  const lap = stopwatch();
  await association("127.0.0.1", port, called, (c) => {
    for (let i = 0; i < STORES; i++) {
      const p = parsePart10(
        makeInstance({
          study: uid(`bench-store-${label}-${round}`),
          series: uid(`bench-store-series-${label}-${round}`),
          sop: uid(`bench-store-${label}-${round}-${i}`),
          patientId: "BENCHSTORE",
          patientName: "Bench^Store",
          pixelBytes: STORE_KIB * 1024,
        }),
      );
      const r = new requests.CStoreRequest(
        new RawDataset(p.dataset, p.transferSyntax, { SOPClassUID: p.sopClass, SOPInstanceUID: p.sopInstance }),
      );
      r.on("response", (x: { getStatus(): number }) => {
        if (process.env.BENCH_DEBUG) process.stderr.write(`store ${label} status ${x.getStatus()}\n`);
        if (x.getStatus() === constants.Status.Success) ok++;
        lap();
      });
      c.addRequest(r);
    }
  });
  if (ok !== STORES) throw new Error(`${STORES - ok} C-STOREs did not succeed`);
  return ok;
}

/** GETS WADO-RS retrieves one after another, of the C-FIND data's one-instance studies in turn. */
async function gets(base: string): Promise<void> {
  const lap = stopwatch();
  for (let i = 0; i < GETS; i++) {
    const n = await retrieve(`${base}/studies/${uid(`bench-find-${i % 20}`)}`);
    if (n === 0) throw new Error(`WADO-RS ${base}: empty`);
    lap();
  }
}

/** FINDS QIDO-RS searches one after another (20 matches each). */
async function qidos(url: string): Promise<void> {
  const lap = stopwatch();
  for (let i = 0; i < FINDS; i++) {
    const r = await fetch(url, { headers: { accept: "application/dicom+json" } });
    const n = ((await r.json()) as unknown[]).length;
    if (r.status !== 200 || n !== 20) throw new Error(`QIDO-RS ${url}: ${r.status}, ${n} matches`);
    lap();
  }
}

function retrieve(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'multipart/related; type="application/dicom"' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`${url}: ${res.statusCode}`));
      let n = 0;
      res.on("data", (c: Buffer) => (n += c.length));
      res.on("end", () => resolve(n));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const p99 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))]!;
const time = async <T>(fn: () => Promise<T>) => {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  return { r, s: Number(process.hrtime.bigint() - t0) / 1e9 };
};

const orthanc = await startOrthanc();
interface Ports {
  scp: number;
  scpWeb: number;
  scpNoPool: number;
}
const config = (p: Ports) =>
  writeTree({
    "config.toml": baseConfig(`[pipelines.qido]
networks = ["default"]
endpoints = ["qido_in"]
backends = ["orthanc_dimse"]

[endpoints.qido_in]
service = "dicomweb"
options = { path_prefix = "/qido" }

[pipelines.qido_nopool]
networks = ["default"]
endpoints = ["qido_nopool_in"]
backends = ["orthanc_dimse_nopool"]

[endpoints.qido_nopool_in]
service = "dicomweb"
options = { path_prefix = "/qido-nopool" }

[pipelines.dicomweb]
networks = ["default"]
endpoints = ["dw"]
backends = ["orthanc_web"]

[endpoints.dw]
service = "dicomweb"
options = { path_prefix = "/dicomweb" }

[backends.orthanc_web]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}", headers_timeout_ms = 600000, body_timeout_ms = 600000 }

[pipelines.dimse]
endpoints = ["scp"]
backends = ["orthanc_dimse"]

[endpoints.scp]
service = "dicom"
options = { port = ${p.scp}, bind_address = "127.0.0.1", local_aet = "HARMONY" }

[pipelines.dimse_to_web]
endpoints = ["scp_web"]
backends = ["orthanc_web"]

[endpoints.scp_web]
service = "dicom"
options = { port = ${p.scpWeb}, bind_address = "127.0.0.1", local_aet = "HARMONY" }

[backends.orthanc_dimse]
service = "dicom"
options = { host = "127.0.0.1", port = ${orthanc.dicomPort}, aet = "${orthanc.aet}" }

[pipelines.dimse_nopool]
endpoints = ["scp_nopool"]
backends = ["orthanc_dimse_nopool"]

[endpoints.scp_nopool]
service = "dicom"
options = { port = ${p.scpNoPool}, bind_address = "127.0.0.1", local_aet = "HARMONY" }

[backends.orthanc_dimse_nopool]
service = "dicom"
options = { host = "127.0.0.1", port = ${orthanc.dicomPort}, aet = "${orthanc.aet}", max_associations = 0 }
`).replace('log_level = "info"', 'log_level = "info"\naccess_log = false'),
  });
const freePorts = async (): Promise<Ports> => ({
  scp: await freePort(),
  scpWeb: await freePort(),
  scpNoPool: await freePort(),
});
const ports = await freePorts();
const dp = await startDataplane(join(config(ports), "config.toml"));
const basePorts = BASE_CLI ? await freePorts() : undefined;
const dpBase = basePorts
  ? await startDataplane(join(config(basePorts), "config.toml"), {}, [], 15_000, BASE_CLI)
  : undefined;
await new Promise((r) => setTimeout(r, 500));

try {
  // Data: 20 small studies to find; one large study to retrieve.
  for (let i = 0; (ONLY.has("find") || ONLY.has("get")) && i < 20; i++) {
    const f = makeInstance({
      study: uid(`bench-find-${i}`),
      series: uid(`bench-find-s-${i}`),
      sop: uid(`bench-find-i-${i}`),
      patientId: `BENCH${i}`,
      patientName: "Bench^Find",
    });
    await fetch(`${orthanc.http}/instances`, { method: "POST", body: f });
  }
  const STUDY = uid("bench-large");
  const parts = Math.max(1, Math.round(STUDY_MIB / 32));
  for (let i = 0; ONLY.has("wado") && i < parts; i++) {
    const { body, contentType } = multipartRelated([
      makeInstance({
        study: STUDY,
        series: uid("bench-large-s"),
        sop: uid(`bench-large-${i}`),
        patientId: "BENCHBIG",
        patientName: "Bench^Big",
        pixelBytes: 32 * 1024 * 1024,
      }),
    ]);
    const r = await fetch(`${orthanc.dicomweb}/studies`, {
      method: "POST",
      headers: { "content-type": contentType },
      body,
    });
    if (r.status !== 200) throw new Error(`seeding the large study: ${r.status}`);
  }

  type Who = "direct" | "gateway" | "nopool" | "base";
  type Row = { unit: string } & Record<Who, number[]> & { lat: Record<Who, number[]> };
  const row = (unit: string): Row => ({
    unit,
    direct: [],
    gateway: [],
    nopool: [],
    base: [],
    lat: { direct: [], gateway: [], nopool: [], base: [] },
  });
  const rows: Record<string, Row> = {
    "C-FIND": row("ops/s"),
    "QIDO-RS": row("ops/s"),
    "C-STORE": row("ops/s"),
    "WADO-RS": row("MB/s"),
    "C-GET": row("ops/s"),
  };
  if (!ONLY.has("find")) delete rows["C-FIND"];
  if (!ONLY.has("find")) delete rows["QIDO-RS"];
  if (!ONLY.has("store")) delete rows["C-STORE"];
  if (!ONLY.has("wado")) delete rows["WADO-RS"];
  if (!ONLY.has("get")) delete rows["C-GET"];
  const peak = { before: memoryOf(dp.pid).hwm, after: 0 };
  const loadBefore = loadavg();
  const targets: Who[] = ["direct", "gateway", "nopool", ...(dpBase ? (["base"] as const) : [])];
  // Every target in every position over the rounds.
  const orders: Who[][] = targets.map((_, r) => targets.map((_, i) => targets[(i + r) % targets.length]!));
  for (let round = 0; round < ROUNDS; round++) {
    for (const who of orders[round % orders.length]!) {
      const own = who === "base" ? basePorts! : ports;
      const plane = who === "base" ? dpBase! : dp;
      const port = who === "direct" ? orthanc.dicomPort : who === "nopool" ? ports.scpNoPool : own.scp;
      const called = who === "direct" ? orthanc.aet : "HARMONY";
      if (rows["C-FIND"]) {
        const f = await time(() => finds(port, called));
        if (f.r.matches !== FINDS * 20) throw new Error(`${who}: ${f.r.matches} matches, expected ${FINDS * 20}`);
        rows["C-FIND"][who].push(FINDS / f.s);
        rows["C-FIND"].lat[who].push(...lastLatencies);
      }
      if (rows["QIDO-RS"] && who !== "direct") {
        // The `dicom` backend alone (no SCP in front): QIDO-RS over HTTP, one C-FIND each. Its
        // "direct" is the C-FIND row's.
        const prefix = who === "nopool" ? "/qido-nopool" : "/qido";
        const q = await time(() => qidos(plane.url("default", `${prefix}/studies?PatientName=Bench%5EFind`)));
        rows["QIDO-RS"][who].push(FINDS / q.s);
        rows["QIDO-RS"].lat[who].push(...lastLatencies);
      } else if (rows["QIDO-RS"] && rows["C-FIND"]) {
        rows["QIDO-RS"].direct.push(rows["C-FIND"].direct.at(-1)!);
        rows["QIDO-RS"].lat.direct.push(...rows["C-FIND"].lat.direct.slice(-FINDS));
      }
      if (rows["C-STORE"]) {
        const storePort = who !== "direct" && STORE_BACKEND === "dicomweb" ? own.scpWeb : port;
        const s = await time(() => stores(storePort, called, round, who));
        rows["C-STORE"][who].push(STORES / s.s);
        rows["C-STORE"].lat[who].push(...lastLatencies);
      }
      if (rows["C-GET"]) {
        const base =
          who === "direct" ? orthanc.dicomweb : plane.url("default", who === "nopool" ? "/qido-nopool" : "/qido");
        const g = await time(() => gets(base));
        rows["C-GET"][who].push(GETS / g.s);
        rows["C-GET"].lat[who].push(...lastLatencies);
      }
      if (rows["WADO-RS"] && who !== "nopool" && who !== "base") {
        const base = who === "direct" ? orthanc.dicomweb : dp.url("default", "/dicomweb");
        let bytes = 0;
        const w = await time(async () => {
          for (let i = 0; i < RETRIEVES; i++) bytes += await retrieve(`${base}/studies/${STUDY}`);
        });
        rows["WADO-RS"][who].push(bytes / 1e6 / w.s);
      }
    }
    process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  peak.after = memoryOf(dp.pid).hwm;
  const fixed = (x: number | undefined, d = 1) => (x === undefined ? undefined : Number(x.toFixed(d)));
  const out = Object.entries(rows).map(([op, r]) => {
    const m = (who: Who) => (r[who].length ? median(r[who]) : undefined);
    const lat = (who: Who) =>
      r.lat[who].length ? { p50_ms: fixed(median(r.lat[who]), 2), p99_ms: fixed(p99(r.lat[who]), 2) } : undefined;
    return {
      op,
      unit: r.unit,
      direct: fixed(m("direct")),
      gateway: fixed(m("gateway")),
      nopool: fixed(m("nopool")),
      base: fixed(m("base")),
      ratio_base: m("base") === undefined ? undefined : fixed(m("base")! / m("direct")!, 2),
      ratio: fixed(m("gateway")! / m("direct")!, 2),
      ratio_nopool: m("nopool") === undefined ? undefined : fixed(m("nopool")! / m("direct")!, 2),
      latency: { direct: lat("direct"), gateway: lat("gateway"), nopool: lat("nopool"), base: lat("base") },
    };
  });
  for (const r of out)
    process.stdout.write(
      `${r.op.padEnd(8)} direct ${String(r.direct).padStart(9)} ${r.unit}  gateway ${String(r.gateway).padStart(9)} ${r.unit}  ratio ${r.ratio}` +
        (r.nopool === undefined ? "" : `  (no pool ${r.nopool} ${r.unit}, ratio ${r.ratio_nopool})`) +
        (r.latency.gateway
          ? `  p50/p99 ms direct ${r.latency.direct?.p50_ms}/${r.latency.direct?.p99_ms} gateway ${r.latency.gateway.p50_ms}/${r.latency.gateway.p99_ms} no pool ${r.latency.nopool?.p50_ms}/${r.latency.nopool?.p99_ms}`
          : "") +
        (r.base === undefined
          ? ""
          : `  base ${r.base} ${r.unit} (ratio ${r.ratio_base}, p50/p99 ms ${r.latency.base?.p50_ms}/${r.latency.base?.p99_ms})`) +
        "\n",
    );
  process.stdout.write(
    JSON.stringify({
      rounds: ROUNDS,
      finds: FINDS,
      stores: STORES,
      store_kib: STORE_KIB,
      store_backend: STORE_BACKEND,
      study_mib: parts * 32,
      retrieves: RETRIEVES,
      gets: GETS,
      base_cli: BASE_CLI || undefined,
      gateway_peak_rss_mib: Math.round(peak.after / 2 ** 20),
      load_average: { before: loadBefore.map((x) => fixed(x, 2)), after: loadavg().map((x) => fixed(x, 2)) },
      results: out,
    }) + "\n",
  );
} finally {
  await dpBase?.stop();
  await dp.stop();
  await orthanc.stop();
}
