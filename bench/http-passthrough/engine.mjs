// bench/http-passthrough/engine.mjs: the llhttp upstream engine's own CPU per request, builds
// compared in one process (issue 18).
//
//   node bench/http-passthrough/engine.mjs [--slices 30] [--ms 500] [--conc 64] [--size 1k] [--wire tcp|fake] DIST...
//
// DIST is a data plane's dist directory (dataplane/dist, or build-base.sh's .tmp/base-<sha>/dist).
// Each build's H1Pool (dist/http1/pool.js) runs in this one process against upstream.mjs (its own
// process, on CPU 0; this one on CPU 1 when taskset is there), 64 requests in flight with the
// headers the http backend sends and a handler that takes each chunk and releases it (as
// http-forward.ts does), so only the engine (dispatch, the request head, the answer's read and
// the socket's reuse) and Node's socket code run. The builds take turns of `--ms` each, A B A B ...,
// so a busy box slows both alike: the result is each build's process CPU (utime + stime: Linux
// measures their sum exactly and splits it by tick samples, so utime alone is too coarse for short
// turns) per request per turn, and the ratio of each build to the first, paired turn by turn
// (median, quartiles, min–max). Give the same dist twice to see the noise (two pools, one build).
//
// `--wire fake`: no sockets at all. The pool's connect function hands it an in-process Duplex that
// answers each request head, in the next turn of the event loop, with the bytes upstream.mjs sends
// (node:http's head, the 1 KiB body); no syscall, no kernel time, so the engine's JS is nearly all
// that is measured and the turns vary far less on a busy box. (Its writes are a Duplex's, not
// net.Socket's: the socket's own write path is not in it.)
import { spawn, spawnSync } from "node:child_process";
import { connect as netConnect } from "node:net";
import { Duplex } from "node:stream";
import { resolve, join } from "node:path";
import { parseArgs } from "node:util";
import { HERE } from "./profiled.mjs";

const { values: opt, positionals: dists } = parseArgs({
  allowPositionals: true,
  options: {
    slices: { type: "string", default: "30" },
    ms: { type: "string", default: "500" },
    conc: { type: "string", default: "64" },
    size: { type: "string", default: "1k" },
    wire: { type: "string", default: "tcp" },
  },
});
if (!dists.length) {
  console.error("usage: node engine.mjs [--slices 30] [--ms 500] [--conc 64] [--size 1k] <dist dir>...");
  process.exit(2);
}

const hasTaskset = spawnSync("taskset", ["-V"]).status === 0;
if (hasTaskset) spawnSync("taskset", ["-cp", "1", String(process.pid)]);
const PORT = 19700 + Math.floor(Math.random() * 200);
const upstream = spawn(
  hasTaskset ? "taskset" : process.execPath,
  [...(hasTaskset ? ["-c", "0", process.execPath] : []), join(HERE, "upstream.mjs")],
  { env: { ...process.env, PORT: String(PORT) }, stdio: "ignore" },
);
process.on("exit", () => upstream.kill());
for (let i = 0; ; i++) {
  try {
    const r = await fetch(`http://127.0.0.1:${PORT}/${opt.size}`);
    await r.arrayBuffer();
    break;
  } catch (e) {
    if (i > 100) throw e;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** upstream.mjs's answer, bytes as sent: the fake wire's reply to every request. */
const answer = await new Promise((done, fail) => {
  const sock = netConnect(PORT, "127.0.0.1", () => sock.write(`GET /${opt.size} HTTP/1.1\r\nhost: x\r\n\r\n`));
  const parts = [];
  sock.on("data", (b) => {
    parts.push(b);
    const all = Buffer.concat(parts);
    const h = all.indexOf("\r\n\r\n");
    const m = /content-length: (\d+)/i.exec(all.subarray(0, h).toString("latin1"));
    if (h >= 0 && m && all.length >= h + 4 + Number(m[1])) {
      sock.destroy();
      done(all);
    }
  });
  sock.on("error", fail);
});

/** An in-process upstream connection: every request head written is answered in the next turn. */
class FakeSocket extends Duplex {
  constructor() {
    super({ decodeStrings: false });
    this.owed = 0;
  }
  _write(chunk, enc, cb) {
    const s = typeof chunk === "string" ? chunk : chunk.toString("latin1");
    if (s.endsWith("\r\n\r\n") && this.owed++ === 0) setImmediate(() => this.answer());
    cb();
  }
  answer() {
    for (; this.owed > 0; this.owed--) this.push(answer);
  }
  _read() {}
  setKeepAlive() {
    return this;
  }
  setNoDelay() {
    return this;
  }
}
const fakeConnect = (ready) => {
  const socket = new FakeSocket();
  setImmediate(ready);
  return { socket, readsInto: false };
};

const builds = [];
for (const d of dists) {
  const dir = resolve(d);
  const { H1Pool } = await import(join(dir, "http1/pool.js"));
  const { CHUNK_RELEASED } = await import(join(dir, "http1/read-buffer.js"));
  const pool = new H1Pool(`http://127.0.0.1:${PORT}`, {
    connections: 128,
    keepAliveTimeout: 4000,
    headersTimeout: 30000,
    bodyTimeout: 30000,
    connectTimeout: 5000,
    ...(opt.wire === "fake" ? { connect: fakeConnect } : {}),
  });
  builds.push({ name: d, pool, CHUNK_RELEASED, perReq: [] });
}

let seq = 0;
/** The headers upstreamHeaders (backends/http-upstream.ts) sends for a wrk request. */
function headers() {
  const id = `req-${(seq++).toString(16).padStart(12, "0")}`;
  return {
    host: `127.0.0.1:${PORT}`,
    "x-forwarded-for": "127.0.0.1",
    "x-forwarded-proto": "http",
    "x-forwarded-host": "127.0.0.1:19180",
    "x-request-id": id,
    traceparent: `00-${id.padEnd(32, "0")}-${"0".repeat(15)}1-01`,
  };
}

/** Runs `b` for `ms`, `conc` requests in flight; resolves with [requests, CPU µs]. */
function slice(b, ms, conc) {
  return new Promise((done, fail) => {
    let stop = false;
    let inFlight = 0;
    let completed = 0;
    const before = process.cpuUsage();
    const next = () => {
      if (stop) {
        if (inFlight === 0) {
          const u = process.cpuUsage(before);
          done([completed, u.user + u.system]);
        }
        return;
      }
      inFlight++;
      b.pool.dispatch(
        { method: "GET", path: `/${opt.size}`, headers: headers(), body: null },
        {
          bytes: 0,
          onRequestStart() {},
          onResponseStart(_c, status) {
            if (status !== 200) fail(new Error(`status ${status}`));
          },
          onResponseData(_c, chunk) {
            this.bytes += chunk.length;
          },
          [b.CHUNK_RELEASED]() {
            return true;
          },
          onResponseEnd() {
            inFlight--;
            completed++;
            next();
          },
          onResponseError(_c, e) {
            fail(e);
          },
        },
      );
    };
    for (let i = 0; i < conc; i++) next();
    setTimeout(() => (stop = true), ms);
  });
}

const ms = Number(opt.ms);
const conc = Number(opt.conc);
for (const b of builds) await slice(b, 1000, conc); // warm-up: JIT, sockets
for (let s = 0; s < Number(opt.slices); s++) {
  // Rotated order per slice, so neither build always follows the other.
  for (let k = 0; k < builds.length; k++) {
    const b = builds[(s + k) % builds.length];
    const [n, us] = await slice(b, ms, conc);
    b.perReq.push(us / n);
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const base = builds[0];
for (const b of builds) {
  const ratios = b.perReq.map((v, i) => v / base.perReq[i]);
  const sorted = [...ratios].sort((x, y) => x - y);
  console.log(
    `${b.name}: ${median(b.perReq).toFixed(2)} µs/req median (${Math.min(...b.perReq).toFixed(2)}–${Math.max(...b.perReq).toFixed(2)}); ÷ first, paired: median ${median(ratios).toFixed(3)} (${sorted[0].toFixed(3)}–${sorted.at(-1).toFixed(3)}; quartiles ${sorted[Math.floor(sorted.length / 4)].toFixed(3)}–${sorted[Math.floor((3 * sorted.length) / 4)].toFixed(3)})`,
  );
}
for (const b of builds) await b.pool.destroy();
process.exit(0);
