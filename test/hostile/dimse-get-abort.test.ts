/**
 * A PACS that aborts in the middle of a C-GET (pynetdicom: test/peers/python/pool_scp.py
 * --get-abort announces two sub-operations, sends one instance, then sends an A-ABORT), against the
 * `dicom` backend's association pool, which C-GET now uses. The retrieve fails (502, problem+json)
 * instead of hanging or passing one instance off as the study; the aborted association leaves the
 * pool, no descriptor is kept, and the same pool goes on serving queries and retrieves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { startPoolScp } from "../peers/pynetdicom.js";
import { dicomwebToDimsePipeline, SAMPLES } from "../peers/dicom-peers.js";
import { baseConfig, eventually, http, startDataplane, writeTree } from "../../dataplane/test/helpers.js";
import { assertStillServes, fdCount } from "./harness.js";

const fdLinks = (pid: number) =>
  readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return "?";
    }
  });

const STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"; // CT_small.dcm's study

test("a peer that aborts mid C-GET: 502, nothing leaked, the pool still serves", { timeout: 120_000 }, async () => {
  const peer = await startPoolScp("GETABORT", { getFile: join(SAMPLES, "CT_small.dcm"), getAbort: true });
  const dir = writeTree({
    "config.toml": baseConfig(
      dicomwebToDimsePipeline("pacs", "/pacs", { port: peer.port, aet: "GETABORT" }, "max_associations = 1"),
    ),
  });
  const dp = await startDataplane(join(dir, "config.toml"));
  try {
    // A connection per request (agent: false): no HTTP keep-alive in the descriptor count.
    const query = () =>
      http(dp.url("default", "/pacs/studies?PatientName=Pool*"), {
        headers: { accept: "application/dicom+json" },
        agent: false,
      });
    // Once first: the pooled association it leaves open is in the baseline.
    const warm = await query();
    assert.equal(warm.status, 200, warm.text);
    const fds = await fdCount(dp.pid);
    const fdsBefore = fdLinks(dp.pid);
    for (let i = 0; i < 2; i++) {
      const res = await http(dp.url("default", `/pacs/studies/${STUDY}`), {
        headers: { accept: 'multipart/related; type="application/dicom"' },
        agent: false,
      });
      assert.equal(res.status, 502, res.text.slice(0, 300));
      assert.match(String(res.headers["content-type"]), /problem\+json/);
    }
    assert.equal(peer.count("get"), 2, JSON.stringify(peer.events()));
    assert.ok(peer.count("aborted") >= 2, JSON.stringify(peer.events()));
    // With one association allowed, an aborted one still held by the pool would make this wait.
    const q = await query();
    assert.equal(q.status, 200, q.text);
    await eventually("descriptors given back", async () => (await fdCount(dp.pid)) <= fds, {
      context: () => `baseline ${fds}: ${fdsBefore.join(" ")}\nnow: ${fdLinks(dp.pid).join(" ")}`,
    });
    await assertStillServes(dp, "default", "/pacs/studies?PatientName=Pool*");
  } finally {
    await dp.stop();
    await peer.stop();
  }
});
