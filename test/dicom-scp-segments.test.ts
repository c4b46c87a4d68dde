/**
 * How the gateway's DIMSE SCP writes a C-FIND's answer (issue 18: ~500 ms per C-FIND through the
 * SCP that the backend did not spend). dcmjs-dimse wrote every PDU with a write of its own, two
 * per match and one for the final response, on a socket with Nagle's algorithm on: the first
 * segment left, the rest waited for the peer's ACK, which a peer with nothing to send yet delays.
 * Now the whole answer leaves as one writev with TCP_NODELAY: one TCP segment per C-FIND.
 *
 * dcmtk's findscu sends N C-FINDs on one association (--repeat) through a relay that only copies
 * bytes; the kernel's own count of data segments received on the relay's connection to the
 * gateway (`ss -ti`, data_segs_in) is what the gateway sent: the A-ASSOCIATE-AC, one segment per
 * C-FIND answer, the A-RELEASE-RP. No timing is measured.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer, connect, type Socket } from "node:net";
import { once } from "node:events";
import { join } from "node:path";
import { dcmtk, scpPipeline, studyFindArgs } from "./peers/dicom-peers.js";
import { baseConfig, freePort, startDataplane, writeTree } from "../dataplane/test/helpers.js";

const FINDS = 6;

/** Copies bytes both ways; keeps its connection to the gateway open after the client leaves. */
async function relay(to: number): Promise<{ port: number; upstream: Promise<Socket>; close(): void }> {
  let gotUpstream: (s: Socket) => void;
  const upstream = new Promise<Socket>((r) => (gotUpstream = r));
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (down) => {
    const up = connect({ port: to, host: "127.0.0.1", allowHalfOpen: true });
    sockets.push(down, up);
    gotUpstream(up);
    down.on("data", (c: Buffer) => up.write(c));
    up.on("data", (c: Buffer) => down.write(c));
    // The gateway's FIN goes on to the client; the client's is not passed back, so the relay's
    // socket (and its counters) is still there to read when findscu has exited.
    up.on("end", () => down.end());
    down.on("error", () => undefined);
    up.on("error", () => undefined);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as { port: number }).port,
    upstream,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** The kernel's data_segs_in of the TCP socket bound to 127.0.0.1:`localPort`. */
function dataSegmentsIn(localPort: number): number {
  const r = spawnSync("ss", ["-tinH", "state", "all", "src", `127.0.0.1:${localPort}`], { encoding: "utf8" });
  const m = /data_segs_in:(\d+)/.exec(r.stdout);
  assert.ok(m, `no data_segs_in for port ${localPort} in ss output:\n${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

test("N C-FINDs on one association through the SCP: each answer is one TCP segment", async (t) => {
  const scpPort = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(scpPipeline(scpPort, { name: "mock", toml: 'service = "mock_dicom"' })),
  });
  const dp = await startDataplane(join(dir, "config.toml"));
  const r = await relay(scpPort);
  try {
    const find = await dcmtk(
      "findscu",
      studyFindArgs(r.port, ["StudyInstanceUID", "PatientName"], ["-v", "--repeat", String(FINDS), "-aet", "FINDSCU"]),
    );
    assert.equal(find.code, 0, find.out);
    assert.equal(find.out.match(/Requesting Association/g)?.length, 1, `one association:\n${find.out}`);
    const pending = find.out.match(/Find Response: \d+ \(Pending\)/g)?.length ?? 0;
    assert.ok(pending >= FINDS, `every C-FIND matched:\n${find.out}`);
    assert.equal(find.out.match(/Received Final Find Response/g)?.length, FINDS, find.out);

    const up = await r.upstream;
    const segments = dataSegmentsIn(up.localPort!);
    t.diagnostic(`${segments} data segments from the gateway for ${FINDS} C-FINDs, ${pending} matches`);
    // A-ASSOCIATE-AC + one per C-FIND answer + A-RELEASE-RP. Before: at least two per answer.
    assert.ok(
      segments <= FINDS + 2,
      `${segments} data segments from the gateway for ${FINDS} C-FINDs (${pending} matches): expected at most ${FINDS + 2}`,
    );
  } finally {
    r.close();
    await dp.stop();
  }
});
