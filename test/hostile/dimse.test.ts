/**
 * The DIMSE listener under attack, over raw sockets against the real data plane: PDU headers that
 * announce more than the caps, pushes past them, partial PDUs, silent connections, idle and
 * overlong associations, and floods of half-sent association requests. After each, the process
 * still answers HTTP and a C-ECHO from both independent implementations (dcmtk's echoscu and
 * pynetdicom). Timeouts are configured small so the tests wait for them without racing them.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { echo, startOrthanc, PEER_PYTHON, SAMPLES, type Orthanc } from "../peers/dicom-peers.js";
import { uidsOf } from "../dicom-files.js";
import {
  baseConfig,
  eventually,
  freePort,
  memoryOf,
  proxyPipeline,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
  type LogLine,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, fdCount, rawExchange } from "./harness.js";

const MAX_PDU = 16384;
const ARTIM_MS = 1000;
const IDLE_MS = 1500;
const MAX_ASSOCIATIONS = 8;
const MAX_INSTANCE = 4 * 1024 * 1024;
const MiB = 1024 * 1024;

let orthanc: Orthanc;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let dp: Dataplane;
let port: number; // the SCP under attack
let shortPort: number; // an SCP with a 2-per-peer cap and a short association lifetime
let slowPort: number; // an SCP whose backend answers STOW-RS only after twice the idle timeout
let slow: Awaited<ReturnType<typeof startUpstream>>;

/** An A-ASSOCIATE-RQ (PS3.8 9.3.2) for Verification, Implicit VR Little Endian, as dcmtk would send it. */
function associateRq(called: string, calling = "ATTACKER", maxPdu = MAX_PDU): Buffer {
  const item = (type: number, body: Buffer) => {
    const h = Buffer.alloc(4);
    h[0] = type;
    h.writeUInt16BE(body.length, 2);
    return Buffer.concat([h, body]);
  };
  const ae = (s: string) => Buffer.from(s.padEnd(16, " "), "ascii");
  const appContext = item(0x10, Buffer.from("1.2.840.10008.3.1.1.1"));
  const pc = item(
    0x20,
    Buffer.concat([
      Buffer.from([1, 0, 0, 0]),
      item(0x30, Buffer.from("1.2.840.10008.1.1")),
      item(0x40, Buffer.from("1.2.840.10008.1.2")),
    ]),
  );
  const max = Buffer.alloc(4);
  max.writeUInt32BE(maxPdu);
  const user = item(0x50, Buffer.concat([item(0x51, max), item(0x52, Buffer.from("1.2.3.4"))]));
  const body = Buffer.concat([
    Buffer.from([0, 1, 0, 0]),
    ae(called),
    ae(calling),
    Buffer.alloc(32),
    appContext,
    pc,
    user,
  ]);
  const h = Buffer.alloc(6);
  h[0] = 0x01;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

/** A P-DATA-TF PDU with one PDV: a data set fragment (not the last) of `size` bytes on context 1. */
function datasetFragment(size: number): Buffer {
  const pdv = Buffer.alloc(6 + size);
  pdv.writeUInt32BE(size + 2, 0);
  pdv[4] = 1; // presentation context
  pdv[5] = 0x00; // data set, more fragments follow
  return Buffer.concat([pdataHeader(pdv.length), pdv]);
}

/** A P-DATA-TF header announcing `length` bytes. */
function pdataHeader(length: number): Buffer {
  const h = Buffer.alloc(6);
  h[0] = 0x04;
  h.writeUInt32BE(length, 2);
  return h;
}

/** Runs a Python snippet with pynetdicom; resolves with its exit code and output. */
function python(code: string, args: string[] = []): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(PEER_PYTHON, ["-c", code, ...args]);
    let out = "";
    p.stdout.on("data", (c: Buffer) => (out += c.toString()));
    p.stderr.on("data", (c: Buffer) => (out += c.toString()));
    p.on("close", (c) => resolve({ code: c, out }));
  });
}

/** pynetdicom C-STOREs the files given after port and called AE; prints each status. */
const PY_STORE = `
import sys
from pydicom import dcmread
from pynetdicom import AE
ae = AE(ae_title="PYNETDICOM")
ae.add_requested_context("1.2.840.10008.1.1")
datasets = [dcmread(f) for f in sys.argv[3:]]
for ds in datasets:
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title=sys.argv[2])
if not assoc.is_established:
    sys.exit("association not established")
print("echo", assoc.send_c_echo().Status)
for ds in datasets:
    print("store", assoc.send_c_store(ds).Status)
assoc.release()
`;

const PY_ECHO = `
import sys
from pynetdicom import AE
ae = AE(ae_title="PYNETDICOM")
ae.add_requested_context("1.2.840.10008.1.1")
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title=sys.argv[2])
if not assoc.is_established:
    sys.exit("association not established")
status = assoc.send_c_echo()
assoc.release()
sys.exit(0 if status and status.Status == 0 else "C-ECHO failed: %r" % status)
`;

/** After an attack: HTTP still answers, and so does a C-ECHO from dcmtk and from pynetdicom. */
async function stillServes(): Promise<void> {
  await assertStillServes(dp, "default", "/web/ok");
  assert.ok(echo("HARMONY", port), "echoscu C-ECHO failed after the attack");
  const py = await python(PY_ECHO, [String(port), "HARMONY"]);
  assert.equal(py.code, 0, `pynetdicom C-ECHO failed after the attack: ${py.out}`);
}

/** The byte values of what the server sent. */
const bytes = (text: string) => Buffer.from(text, "latin1");

/** A log line since `since` saying a PDU announcing `length` was refused as too long. */
/** True once the data plane logs a line matching `pred` at or after `since` (a log line may trail the close). */
function logged(since: number, pred: (l: LogLine) => boolean): Promise<boolean> {
  return dp
    .waitForLog((l) => dp.logs.indexOf(l) >= since && pred(l), 5_000)
    .then(
      () => true,
      () => false,
    );
}

/** True once the data plane has logged the abort of a PDU announcing `length`. */
function abortedFor(since: number, length: number): Promise<boolean> {
  return logged(
    since,
    (l) => l.message === "DICOM connection aborted: bad PDU" && l.kind === "too-long" && l.length === length,
  );
}

/** True when `reply` ends with an A-ABORT PDU. */
function endsWithAbort(text: string): boolean {
  const b = bytes(text);
  return b.length >= 10 && b[b.length - 10] === 0x07 && b.readUInt32BE(b.length - 8) === 4;
}

before(async () => {
  orthanc = await startOrthanc();
  upstream = await startUpstream((_req, res) => res.end("ok"));
  slow = await startUpstream((req, res) => {
    req.resume();
    req.on("end", () =>
      setTimeout(() => {
        res.setHeader("content-type", "application/dicom+json");
        res.end("{}");
      }, 2 * IDLE_MS),
    );
  });
  port = await freePort();
  shortPort = await freePort();
  slowPort = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(`
${proxyPipeline("web", "/web", upstream.url)}

[pipelines.scp]
endpoints = ["scp"]
backends = ["orthanc"]

[endpoints.scp]
service = "dicom"
[endpoints.scp.options]
port = ${port}
bind_address = "127.0.0.1"
local_aet = "HARMONY"
max_pdu = ${MAX_PDU}
artim_timeout_ms = ${ARTIM_MS}
association_timeout_ms = ${IDLE_MS}
max_associations = ${MAX_ASSOCIATIONS}
max_associations_per_peer = 0
max_instance_bytes = ${MAX_INSTANCE}

[backends.orthanc]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }

[pipelines.scp_short]
endpoints = ["scp_short"]
backends = ["orthanc"]

[endpoints.scp_short]
service = "dicom"
[endpoints.scp_short.options]
port = ${shortPort}
bind_address = "127.0.0.1"
local_aet = "HARMONY"
artim_timeout_ms = ${ARTIM_MS}
association_max_ms = 4000
max_associations_per_peer = 2

[pipelines.scp_slow]
endpoints = ["scp_slow"]
backends = ["slow"]

[endpoints.scp_slow]
service = "dicom"
[endpoints.scp_slow.options]
port = ${slowPort}
bind_address = "127.0.0.1"
local_aet = "HARMONY"
association_timeout_ms = ${IDLE_MS}

[backends.slow]
service = "dicomweb"
options = { base_url = "${slow.url}" }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === port);
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === shortPort);
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === slowPort);
});

after(async () => {
  await dp?.stop();
  await Promise.all([orthanc?.stop(), upstream?.close(), slow?.close()]);
});

test("pynetdicom as SCU: C-ECHO, and C-STORE of sample files arrives at the backend", { timeout: 60_000 }, async () => {
  const files = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm"].map((f) => join(SAMPLES, f));
  const py = await python(PY_STORE, [String(port), "HARMONY", ...files]);
  assert.equal(py.code, 0, py.out);
  assert.deepEqual(
    py.out.split("\n").filter((l) => /^(echo|store) /.test(l)),
    ["echo 0", "store 0", "store 0", "store 0"],
    py.out,
  );
  for (const f of files) {
    const sop = uidsOf(readFileSync(f)).sop;
    const r = await fetch(`${orthanc.dicomweb}/instances?SOPInstanceUID=${sop}`);
    assert.equal(r.status, 200, `${f} is not in Orthanc`);
    assert.equal(((await r.json()) as unknown[]).length, 1);
  }
});

test("an association waiting on a slow backend is not idle: the C-STORE completes", { timeout: 60_000 }, async () => {
  const py = await python(PY_STORE, [String(slowPort), "HARMONY", join(SAMPLES, "CT_small.dcm")]);
  assert.equal(py.code, 0, py.out);
  assert.match(py.out, /^store 0$/m, py.out);
});

test(
  "a PDU header announcing 2 GiB, split so the type arrives alone, is aborted at once",
  { timeout: 60_000 },
  async () => {
    const rss = memoryOf(dp.pid).rss;
    const header = pdataHeader(0x7fffffff);
    header[0] = 0x01; // an A-ASSOCIATE-RQ, the one PDU allowed first
    const reply = await rawExchange(port, [header.subarray(0, 1), 50, header.subarray(1)], 10_000);
    assert.ok(reply.closed, "the connection was left open");
    assert.ok(endsWithAbort(reply.text), `no A-ABORT: ${bytes(reply.text).toString("hex")}`);
    assert.ok(memoryOf(dp.pid).rss - rss < 64 * MiB, "RSS grew");
    await stillServes();
  },
);

test("a P-DATA PDU longer than max_pdu is aborted", { timeout: 60_000 }, async () => {
  const reply = await rawExchange(port, [associateRq("HARMONY"), 300, pdataHeader(MAX_PDU + 1)], 10_000);
  const b = bytes(reply.text);
  assert.equal(b[0], 0x02, `the association was not accepted: ${b.toString("hex").slice(0, 40)}`);
  assert.ok(reply.closed, "the connection was left open");
  assert.ok(endsWithAbort(reply.text), "no A-ABORT after the A-ASSOCIATE-AC");
  await stillServes();
});

test("a 38 MiB push in one PDU is cut after the header; memory stays flat", { timeout: 60_000 }, async () => {
  const rss = memoryOf(dp.pid).rss;
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  const push = Array.from({ length: 38 * 16 }, () => chunk);
  const since = dp.logs.length;
  const reply = await rawExchange(port, [associateRq("HARMONY"), 300, pdataHeader(38 * MiB), ...push], 20_000);
  assert.ok(reply.closed, "the connection was left open");
  // The A-ABORT may be overtaken by the reset our close causes while the push goes on: the log says why.
  assert.ok(await abortedFor(since, 38 * MiB), "not aborted for its length");
  assert.ok(memoryOf(dp.pid).rss - rss < 32 * MiB, `RSS grew by ${(memoryOf(dp.pid).rss - rss) / MiB} MiB`);
  await stillServes();
});

test(
  "a data set pushed in valid PDUs past max_instance_bytes is aborted; memory stays bounded",
  { timeout: 60_000 },
  async () => {
    const rss = memoryOf(dp.pid).rss;
    const since = dp.logs.length;
    const fragment = datasetFragment(MAX_PDU - 12);
    const count = Math.ceil((3 * MAX_INSTANCE) / fragment.length);
    const reply = await rawExchange(
      port,
      [associateRq("HARMONY"), 300, ...Array.from({ length: count }, () => fragment)],
      20_000,
    );
    assert.ok(reply.closed, "the connection was left open");
    assert.ok(
      await logged(since, (l) => l.message === "DICOM association aborted: data set too large"),
      "not aborted for the data set's size",
    );
    assert.ok(memoryOf(dp.pid).rss - rss < 32 * MiB, "RSS grew");
    await stillServes();
  },
);

test("a PDU of an unknown type is aborted (unrecognized PDU)", { timeout: 60_000 }, async () => {
  const reply = await rawExchange(port, [Buffer.from([0x09, 0, 0, 0, 0, 4, 1, 2, 3, 4])], 10_000);
  assert.ok(reply.closed);
  const b = bytes(reply.text);
  assert.deepEqual([...b], [0x07, 0, 0, 0, 0, 4, 0, 0, 2, 1], "A-ABORT, service provider, unrecognized PDU");
  await stillServes();
});

test("a silent connection is closed by the ARTIM timer", { timeout: 60_000 }, async () => {
  const reply = await rawExchange(port, [], 10 * ARTIM_MS);
  assert.ok(reply.closed, "a connection that never sent an association request is still open");
  assert.equal(reply.text, "");
  await stillServes();
});

test("a partial association request is closed by the ARTIM timer", { timeout: 60_000 }, async () => {
  const rq = associateRq("HARMONY");
  const reply = await rawExchange(port, [rq.subarray(0, rq.length - 10)], 10 * ARTIM_MS);
  assert.ok(reply.closed, "a half-sent association request is still open");
  await stillServes();
});

test("a partial PDU inside an association is aborted after the idle timeout", { timeout: 60_000 }, async () => {
  const body = Buffer.alloc(10);
  const reply = await rawExchange(port, [associateRq("HARMONY"), 300, pdataHeader(100), body], 10 * IDLE_MS);
  assert.equal(bytes(reply.text)[0], 0x02);
  assert.ok(reply.closed, "an association with a half-sent PDU is still open");
  assert.ok(endsWithAbort(reply.text), "no A-ABORT");
  await stillServes();
});

test("an idle association is aborted after association_timeout_ms", { timeout: 60_000 }, async () => {
  const reply = await rawExchange(port, [associateRq("HARMONY")], 10 * IDLE_MS);
  assert.equal(bytes(reply.text)[0], 0x02);
  assert.ok(reply.closed, "an idle association is still open");
  assert.ok(endsWithAbort(reply.text), "no A-ABORT");
  await stillServes();
});

/** Opens a socket, writes `data`, and resolves with what came back once the server closes it. */
function holdOpen(p: number, data: Buffer, sockets: Socket[]): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = connect(p, "127.0.0.1");
    sockets.push(s);
    const got: Buffer[] = [];
    s.on("connect", () => s.write(data));
    s.on("data", (c: Buffer) => got.push(c));
    s.on("error", () => undefined); // a reset is a close here
    s.on("close", () => resolve(Buffer.concat(got)));
  });
}

test(
  "150 partial association requests: beyond max_associations refused, the rest cut by ARTIM, memory bounded",
  { timeout: 60_000 },
  async () => {
    const rss = memoryOf(dp.pid).rss;
    const fds = await fdCount(dp.pid);
    const since = dp.logs.length;
    const rq = associateRq("HARMONY");
    const partial = rq.subarray(0, rq.length - 20);
    const sockets: Socket[] = [];
    const replies = await Promise.all(Array.from({ length: 150 }, () => holdOpen(port, partial, sockets)));
    const rejected = replies.filter((r) => r.length === 10 && r[0] === 0x03);
    for (const r of rejected)
      assert.deepEqual([...r.subarray(7)], [2, 3, 2], "rejected-transient, local limit exceeded");
    const cut = dp.logs.slice(since).filter((l) => /ARTIM/.test(l.message)).length;
    assert.ok(cut <= MAX_ASSOCIATIONS, `${cut} connections were held until ARTIM, more than the cap`);
    assert.ok(rejected.length > 0, "nothing was refused");
    assert.ok(memoryOf(dp.pid).rss - rss < 48 * MiB, "RSS grew");
    await eventually("descriptors given back", async () => (await fdCount(dp.pid)) <= fds + 2);
    await stillServes();
  },
);

test("a peer over max_associations_per_peer gets A-ASSOCIATE-RJ (transient)", { timeout: 60_000 }, async () => {
  const sockets: Socket[] = [];
  const held = [
    holdOpen(shortPort, associateRq("HARMONY"), sockets),
    holdOpen(shortPort, associateRq("HARMONY"), sockets),
  ];
  await eventually("two associations up", () => sockets.every((s) => s.bytesRead > 0));
  const third = await holdOpen(shortPort, associateRq("HARMONY"), sockets);
  assert.deepEqual([...third], [0x03, 0, 0, 0, 0, 4, 0, 2, 3, 2]);
  for (const s of sockets) s.destroy();
  await Promise.all(held);
  assert.ok(echo("HARMONY", shortPort), "the peer's slots were not given back");
});

test("an association that outlives association_max_ms is aborted, however busy", { timeout: 60_000 }, async () => {
  const py = await python(
    `
import sys, time
from pynetdicom import AE
ae = AE(ae_title="PYNETDICOM")
ae.add_requested_context("1.2.840.10008.1.1")
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title="HARMONY")
assert assoc.is_established
for i in range(200):
    try:
        assoc.send_c_echo()
    except RuntimeError:
        break
    if not assoc.is_established:
        break
    time.sleep(0.1)
print("aborted" if assoc.is_aborted else "still up after %d echoes" % i)
`,
    [String(shortPort)],
  );
  assert.match(py.out, /aborted/, py.out);
  assert.ok(echo("HARMONY", shortPort));
});
