/**
 * A C-FIND requestor that stops reading in the middle of its results, against the gateway's SCP,
 * which now writes a C-FIND's whole answer at once (one writev). dcmtk's findscu asks, through a
 * relay that stops reading from the gateway after the first few KiB: megabytes of matches sit in
 * the gateway's socket buffers and nobody takes them. The association counts as idle once the
 * answer is written, so the idle timer aborts it; the connection, its buffers and its descriptor
 * go, and the SCP goes on answering everyone else.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, connect, type Socket } from "node:net";
import { once } from "node:events";
import { join } from "node:path";
import { dcmtk, scpPipeline, studyFindArgs } from "../peers/dicom-peers.js";
import {
  baseConfig,
  eventually,
  freePort,
  startDataplane,
  startUpstream,
  writeTree,
} from "../../dataplane/test/helpers.js";
import { fdCount } from "./harness.js";

const MATCHES = 1000;
const COMMENT = "x".repeat(8000); // ImageComments (LT): about 8 MB of answer in all

test("a peer that stops reading mid C-FIND results is cut off at the idle timeout", { timeout: 180_000 }, async () => {
  // Only the stalled query asks for ImageComments; everyone else's gets one small match.
  const origin = await startUpstream((req, res) => {
    const big = (req.url ?? "").includes("ImageComments");
    const matches = Array.from({ length: big ? MATCHES : 1 }, (_, i) => ({
      "0020000D": { vr: "UI", Value: [`1.2.3.${i + 1}`] },
      ...(big ? { "00204000": { vr: "LT", Value: [COMMENT] } } : {}),
    }));
    res.writeHead(200, { "content-type": "application/dicom+json" });
    res.end(JSON.stringify(matches));
  });
  const scpPort = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(
      scpPipeline(
        scpPort,
        { name: "origin", toml: `service = "dicomweb"\noptions = { base_url = "${origin.url}" }` },
        "association_timeout_ms = 1500, artim_timeout_ms = 1000",
      ),
    ),
  });
  const dp = await startDataplane(join(dir, "config.toml"));
  // The relay: passes the association through, then stops reading from the gateway.
  const held: Socket[] = [];
  const relay = createServer((down) => {
    const up = connect(scpPort, "127.0.0.1");
    held.push(down, up);
    let passed = 0;
    down.on("data", (c: Buffer) => up.write(c));
    up.on("data", (c: Buffer) => {
      down.write(c);
      passed += c.length;
      if (passed > 4096) up.pause();
    });
    down.on("error", () => undefined);
    up.on("error", () => undefined);
  });
  relay.listen(0, "127.0.0.1");
  await once(relay, "listening");
  const relayPort = (relay.address() as { port: number }).port;
  const otherFind = () => dcmtk("findscu", studyFindArgs(scpPort, ["StudyInstanceUID"]));
  // Once first, so that the connection to the origin it leaves open is in the baseline.
  const warm = await otherFind();
  assert.equal(warm.code, 0, warm.out);
  const fds = await fdCount(dp.pid);
  const since = dp.logs.length;
  const findscu = spawn("findscu", studyFindArgs(relayPort, ["StudyInstanceUID", "ImageComments"]));
  try {
    await eventually(
      "the stalled association aborted as idle",
      () => dp.logs.slice(since).some((l) => l.message === "DICOM association aborted: idle"),
      { timeoutMs: 90_000 },
    );
    await eventually("the gateway let go of the connection", async () => (await fdCount(dp.pid)) <= fds);
    // Everyone else is still answered: a C-FIND of their own, start to finish.
    const other = await otherFind();
    assert.equal(other.code, 0, other.out);
    assert.equal(dp.proc.exitCode, null, dp.stderr());
  } finally {
    findscu.kill("SIGKILL");
    for (const s of held) s.destroy();
    relay.close();
    await dp.stop();
    await origin.close();
  }
});
