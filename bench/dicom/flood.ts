/**
 * What one hostile DIMSE connection costs everyone else: it announces an N MiB A-ASSOCIATE-RQ
 * (the type byte alone first, as a client may split it) and pushes N MiB, while HTTP requests run
 * one after another through the same data plane. Reports the HTTP latency during the push, how
 * much of the push the gateway read before closing, and its peak RSS. Loopback only.
 *
 *   node --import tsx bench/dicom/flood.ts [--mib 38]
 */
import { parseArgs } from "node:util";
import { connect } from "node:net";
import { join } from "node:path";
import {
  baseConfig,
  freePort,
  http,
  memoryOf,
  proxyPipeline,
  startDataplane,
  startUpstream,
  writeTree,
} from "../../dataplane/test/helpers.js";

const { values: a } = parseArgs({ options: { mib: { type: "string", default: "38" } } });
const MIB = Number(a.mib);

const upstream = await startUpstream((_req, res) => res.end("ok"));
const port = await freePort();
const dir = writeTree({
  "config.toml": baseConfig(`
${proxyPipeline("web", "/web", upstream.url)}

[pipelines.scp]
endpoints = ["scp"]
backends = ["nobody"]

[endpoints.scp]
service = "dicom"
options = { port = ${port}, bind_address = "127.0.0.1", local_aet = "HARMONY" }

[backends.nobody]
service = "dicomweb"
options = { base_url = "${upstream.url}" }
`).replace('log_level = "info"', 'log_level = "info"\naccess_log = false'),
});
const dp = await startDataplane(join(dir, "config.toml"));
await dp.waitForLog((l) => l.message === "DICOM listener started");

/** Writes the header and N MiB as fast as the socket takes them; resolves with bytes written when it closes. */
function push(): Promise<{ written: number; seconds: number }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const s = connect(port, "127.0.0.1");
    let written = 0;
    let closed = false;
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const header = Buffer.alloc(6);
    header[0] = 0x01;
    header.writeUInt32BE(MIB * 1024 * 1024, 2);
    const pump = () => {
      while (!closed && written < MIB * 1024 * 1024) {
        written += chunk.length;
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
      if (!closed) s.end();
    };
    s.on("connect", () => {
      s.write(header.subarray(0, 1));
      setTimeout(() => {
        s.write(header.subarray(1));
        pump();
      }, 50);
    });
    s.resume();
    s.on("error", () => undefined);
    s.on("close", () => {
      closed = true;
      resolve({ written, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
  });
}

try {
  const latencies: number[] = [];
  let pushing = true;
  const flood = push().finally(() => (pushing = false));
  while (pushing) {
    const t0 = process.hrtime.bigint();
    const r = await http(dp.url("default", "/web/ok"), { agent: false });
    if (r.status !== 200) throw new Error(`HTTP ${r.status} during the push`);
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const { written, seconds } = await flood;
  latencies.sort((x, y) => x - y);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  process.stdout.write(
    JSON.stringify({
      mib: MIB,
      pushed_mib: Number((written / 2 ** 20).toFixed(1)),
      connection_seconds: Number(seconds.toFixed(2)),
      http_requests: latencies.length,
      http_p50_ms: Number(pct(0.5).toFixed(1)),
      http_max_ms: Number((latencies.at(-1) ?? 0).toFixed(1)),
      gateway_peak_rss_mib: Math.round(memoryOf(dp.pid).hwm / 2 ** 20),
    }) + "\n",
  );
  // Why the connection ended, as the gateway saw it.
  for (const l of dp.logs.filter((x) => /DICOM|PDU/.test(x.message) && x.level !== "info"))
    process.stderr.write(JSON.stringify(l) + "\n");
} finally {
  await dp.stop();
  await upstream.close();
}
