/**
 * The `dicom` backend's association pool (issue 18), over the wire against a pynetdicom SCP that
 * logs every association it sees (test/peers/python/pool_scp.py): QIDO-RS becomes C-FIND, STOW-RS
 * C-STORE, and the peer's own count of A-ASSOCIATE-RQs says how many associations the gateway
 * opened. Each test has its own peer and data plane, so the counts are its own.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { startPoolScp, type PoolScp } from "./peers/pynetdicom.js";
import { dicomwebToDimsePipeline, startOrthanc } from "./peers/dicom-peers.js";
import { makeInstance, multipartRelated, uid } from "./dicom-files.js";
import { baseConfig, eventually, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

function config(peer: PoolScp, options: string): string {
  return baseConfig(dicomwebToDimsePipeline("pacs", "/pacs", peer, options));
}

async function setup(
  peerOpts: Parameters<typeof startPoolScp>[1],
  options: string,
): Promise<{ peer: PoolScp; dp: Dataplane; file: string; opensBefore: number; stop(): Promise<void> }> {
  const peer = await startPoolScp("POOLSCP", peerOpts);
  const dir = writeTree({ "config.toml": config(peer, options) });
  const file = join(dir, "config.toml");
  const dp = await startDataplane(file);
  return {
    peer,
    dp,
    file,
    opensBefore: peer.count("open"), // the readiness C-ECHO's association
    async stop() {
      await dp.stop();
      await peer.stop();
    },
  };
}

const qido = (dp: Dataplane) =>
  fetch(dp.url("default", "/pacs/studies?PatientName=Pool*"), { headers: { accept: "application/dicom+json" } });

async function stow(dp: Dataplane, n: number): Promise<Response> {
  const { body, contentType } = multipartRelated([
    makeInstance({
      study: uid(`pool-study-${n}`),
      series: uid(`pool-series-${n}`),
      sop: uid(`pool-sop-${n}-${Math.random()}`),
      patientId: "POOL1",
      patientName: "Pool^Test",
    }),
  ]);
  return fetch(dp.url("default", "/pacs/studies"), {
    method: "POST",
    headers: { "content-type": contentType, accept: "application/dicom+json" },
    body,
  });
}

async function expectFound(res: Response): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const body = JSON.parse(text) as { "00100020"?: { Value?: string[] } }[];
  assert.equal(body[0]?.["00100020"]?.Value?.[0], "POOL1");
}

/** The most associations the peer had open at once, from its open/closed events. */
function peakOpen(peer: PoolScp): number {
  let open = 0;
  let peak = 0;
  for (const e of peer.events()) {
    if (e.event === "open") peak = Math.max(peak, ++open);
    if (e.event === "closed") open--;
  }
  return peak;
}

const assocsOf = (peer: PoolScp, event: "find" | "store") =>
  new Set(
    peer
      .events()
      .filter((e) => e.event === event)
      .map((e) => e.assoc),
  );

test("sequential C-FINDs share one association, C-STOREs another (their contexts differ)", async () => {
  const s = await setup({}, 'local_aet = "HARMONY"');
  try {
    for (let i = 0; i < 4; i++) {
      await expectFound(await qido(s.dp));
      const st = await stow(s.dp, i);
      assert.equal(st.status, 200, await st.text());
    }
    assert.equal(s.peer.count("find"), 4);
    assert.equal(s.peer.count("store"), 4);
    assert.equal(assocsOf(s.peer, "find").size, 1, JSON.stringify(s.peer.events()));
    assert.equal(assocsOf(s.peer, "store").size, 1, JSON.stringify(s.peer.events()));
    assert.equal(s.peer.count("open") - s.opensBefore, 2, JSON.stringify(s.peer.events()));
  } finally {
    await s.stop();
  }
});

test("concurrent C-FINDs, then C-STOREs: never more than max_associations open", async () => {
  const s = await setup({ findDelayMs: 200 }, "max_associations = 2");
  try {
    await Promise.all(Array.from({ length: 6 }, () => qido(s.dp).then(expectFound)));
    assert.equal(s.peer.count("find"), 6);
    const findOpens = s.peer.count("open") - s.opensBefore;
    assert.ok(findOpens >= 1 && findOpens <= 2, `${findOpens} associations: ${JSON.stringify(s.peer.events())}`);
    // The stores need contexts the query associations lack: idle ones make room, one at a time.
    const stores = await Promise.all(Array.from({ length: 4 }, (_, i) => stow(s.dp, 100 + i)));
    for (const r of stores) assert.equal(r.status, 200, await r.text());
    assert.equal(s.peer.count("store"), 4);
    assert.ok(peakOpen(s.peer) <= 2, `peak ${peakOpen(s.peer)}: ${JSON.stringify(s.peer.events())}`);
  } finally {
    await s.stop();
  }
});

test("the peer aborts the pooled association: the next request opens a new one and succeeds", async () => {
  const s = await setup({}, "max_associations = 1");
  try {
    await expectFound(await qido(s.dp));
    const first = s.peer.events().find((e) => e.event === "find")!.assoc;
    s.peer.abortAll();
    await eventually("the peer to close the aborted association", () =>
      s.peer.events().some((e) => e.event === "closed" && e.assoc === first),
    );
    await expectFound(await qido(s.dp));
    const finds = s.peer.events().filter((e) => e.event === "find");
    assert.notEqual(finds[1]!.assoc, first, "the second C-FIND went on a new association");
    assert.equal(s.peer.count("open") - s.opensBefore, 2);
    await expectFound(await qido(s.dp)); // and that one is pooled in turn
    assert.equal(s.peer.count("open") - s.opensBefore, 2);
  } finally {
    await s.stop();
  }
});

test("an idle association is released with A-RELEASE after idle_timeout_ms", async () => {
  const s = await setup({}, "idle_timeout_ms = 300");
  try {
    await expectFound(await qido(s.dp));
    const assoc = s.peer.events().find((e) => e.event === "find")!.assoc;
    await eventually("the peer to see the association released", () =>
      s.peer.events().some((e) => e.event === "released" && e.assoc === assoc),
    );
    assert.ok(!s.peer.events().some((e) => e.event === "aborted" && e.assoc === assoc), "released, not aborted");
    await expectFound(await qido(s.dp)); // and the pool opens a new one when asked
  } finally {
    await s.stop();
  }
});

test("a reload that changes the peer settings drains the old pool: the request in flight completes", async () => {
  const s = await setup({ findDelayMs: 1500 }, 'local_aet = "HARMONY"');
  try {
    const loads = () => s.dp.logs.filter((l) => l.message === "config loaded").length;
    const before = loads();
    const inFlight = qido(s.dp);
    await eventually("the C-FIND to reach the peer", () => s.peer.count("find") === 1);
    const old = s.peer.events().find((e) => e.event === "find")!.assoc;
    writeFileSync(s.file, config(s.peer, 'local_aet = "HARMONY2"'));
    await eventually("the reload", () => loads() > before);
    await expectFound(await inFlight);
    await eventually("the old association to be released", () =>
      s.peer.events().some((e) => e.event === "released" && e.assoc === old),
    );
    await expectFound(await qido(s.dp));
    const finds = s.peer.events().filter((e) => e.event === "find");
    assert.notEqual(finds[1]!.assoc, old, "the new generation uses a pool of its own");
  } finally {
    await s.stop();
  }
});

test("a peer that allows two associations: concurrent requests wait instead of failing", async () => {
  const s = await setup({ maxAssociations: 2, findDelayMs: 300 }, "max_associations = 4");
  try {
    const statuses = await Promise.all(
      Array.from({ length: 6 }, () => qido(s.dp).then(async (r) => `${r.status} ${await r.text()}`)),
    );
    for (const st of statuses) assert.match(st, /^200 /);
    assert.equal(s.peer.count("find"), 6);
    // The gateway did try beyond the peer's limit (and was refused), so the waiting was exercised.
    assert.ok(s.peer.count("rejected") >= 1, JSON.stringify(s.peer.events()));
  } finally {
    await s.stop();
  }
});

test("max_associations = 0: one association per request, as before the pool", async () => {
  const s = await setup({}, "max_associations = 0");
  try {
    await expectFound(await qido(s.dp));
    await expectFound(await qido(s.dp));
    assert.equal(s.peer.count("open") - s.opensBefore, 2);
    await eventually("both released", () => s.peer.count("released") - s.opensBefore >= 2);
  } finally {
    await s.stop();
  }
});

test("Orthanc: sequential STOW-RS then QIDO-RS share one association (it proposed the FIND models too)", async () => {
  const orthanc = await startOrthanc({ aet: "POOLORTHANC", verbose: true });
  let associations = 0;
  const count = (c: Buffer | string) => (associations += String(c).split("Association Received").length - 1);
  orthanc.proc.stderr!.on("data", count);
  orthanc.proc.stdout!.on("data", count);
  const dir = writeTree({
    "config.toml": baseConfig(
      dicomwebToDimsePipeline("orthanc", "/orthanc", { port: orthanc.dicomPort, aet: orthanc.aet }),
    ),
  });
  const dp = await startDataplane(join(dir, "config.toml"));
  try {
    const study = uid("pool-orthanc-study");
    for (let i = 0; i < 3; i++) {
      const { body, contentType } = multipartRelated([
        makeInstance({
          study,
          series: uid("pool-orthanc-series"),
          sop: uid(`pool-orthanc-${i}`),
          patientId: "POOLORTHANC",
          patientName: "Pool^Orthanc",
        }),
      ]);
      const res = await fetch(dp.url("default", "/orthanc/studies"), {
        method: "POST",
        headers: { "content-type": contentType, accept: "application/dicom+json" },
        body,
      });
      assert.equal(res.status, 200, await res.text());
    }
    for (let i = 0; i < 3; i++) {
      const res = await fetch(dp.url("default", `/orthanc/studies/${study}/instances`), {
        headers: { accept: "application/dicom+json" },
      });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.equal((JSON.parse(text) as unknown[]).length, 3);
    }
    assert.equal(associations, 1, orthanc.log().slice(-4000));
  } finally {
    await dp.stop();
    await orthanc.stop();
  }
});
