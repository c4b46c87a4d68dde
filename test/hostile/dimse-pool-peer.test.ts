/**
 * A DIMSE peer that accepts the association and then never answers a C-FIND (pynetdicom with a
 * handler that blocks: test/peers/python/pool_scp.py --silent-find), against the `dicom`
 * backend's association pool. The request times out (504), the association is thrown away, and
 * the pool keeps serving; requests piling up behind the stuck one are capped (503, not a queue
 * that grows without end).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startPoolScp, type PoolScp } from "../peers/pynetdicom.js";
import { dicomwebToDimsePipeline } from "../peers/dicom-peers.js";
import { makeInstance, multipartRelated, uid } from "../dicom-files.js";
import { baseConfig, eventually, startDataplane, writeTree, type Dataplane } from "../../dataplane/test/helpers.js";

async function setup(options: string): Promise<{ peer: PoolScp; dp: Dataplane; opensBefore: number }> {
  const peer = await startPoolScp("SILENT", { silentFind: true });
  const dir = writeTree({
    "config.toml": baseConfig(
      dicomwebToDimsePipeline("pacs", "/pacs", { port: peer.port, aet: "SILENT" }, `max_associations = 1, ${options}`),
    ),
  });
  const dp = await startDataplane(join(dir, "config.toml"));
  return { peer, dp, opensBefore: peer.count("open") };
}

const qido = (dp: Dataplane) =>
  fetch(dp.url("default", "/pacs/studies?PatientName=X"), { headers: { accept: "application/dicom+json" } });

test("a peer that never answers: the request times out, its association is discarded, the pool still serves", async () => {
  const { peer, dp, opensBefore } = await setup("connect_timeout_ms = 1000");
  try {
    const res = await qido(dp);
    assert.equal(res.status, 504, await res.text());
    assert.match(res.headers.get("content-type") ?? "", /problem\+json/);
    const stuck = peer.events().find((e) => e.event === "find")!.assoc;
    await eventually("the stuck association to be closed", () =>
      peer.events().some((e) => e.event === "closed" && e.assoc === stuck),
    );
    // With one association allowed, a wedged pool would make this wait; it opens a new one.
    const { body, contentType } = multipartRelated([
      makeInstance({
        study: uid("silent-study"),
        series: uid("silent-series"),
        sop: uid("silent-sop"),
        patientId: "S1",
        patientName: "Silent^Peer",
      }),
    ]);
    const st = await fetch(dp.url("default", "/pacs/studies"), {
      method: "POST",
      headers: { "content-type": contentType, accept: "application/dicom+json" },
      body,
    });
    assert.equal(st.status, 200, await st.text());
    assert.equal(peer.count("open") - opensBefore, 2);
  } finally {
    await dp.stop();
    await peer.stop();
  }
});

test("requests behind a stuck association are capped: past max_queued_requests, 503 at once", async () => {
  const { peer, dp } = await setup("connect_timeout_ms = 60000, max_queued_requests = 1");
  const pending: Promise<unknown>[] = [];
  try {
    pending.push(qido(dp).catch(() => undefined)); // stuck at the peer
    await eventually("the C-FIND to reach the peer", () => peer.count("find") === 1);
    const second = qido(dp).catch(() => undefined);
    const third = qido(dp).catch(() => undefined);
    pending.push(second, third);
    // One of the two waits in the queue (and keeps waiting); the other finds it full.
    const refused = await Promise.race([second, third]);
    assert.ok(refused, "an answer");
    assert.equal(refused.status, 503);
    const problem = (await refused.json()) as { type?: string };
    assert.match(problem.type ?? "", /dimse-pool-full/);
    assert.equal(peer.count("find"), 1, "nothing more reached the stuck peer");
  } finally {
    await dp.stop();
    await Promise.all(pending);
    await peer.stop();
  }
});
