/**
 * HarmonyNetwork end to end, DIMSE (issue 17): two clusters federated into one network
 * (test/network-federation.ts: two control planes and operators, data planes on exactly the files
 * the operators rendered from CRs; nothing on the data-plane side is hand-written).
 *
 * Org A's modality is dcmtk (findscu, storescu: an independent DICOM implementation) calling
 * gw-a's DIMSE endpoint, whose HarmonyPipeline backend targets harmony://hospitals.example/org-b/pacs;
 * B's HarmonyEndpoint `pacs` is a DIMSE endpoint in front of Orthanc (a `dicom` backend to its
 * DIMSE port), so the whole path is DIMSE: findscu → gw-a → DICOM TLS → gw-b → Orthanc.
 * A rule on B's network denies org A's C-STORE at B's PACS (the status, Error Comment and B's
 * audit line name it) while C-FIND still works; removing the rule, and then org A's membership,
 * take effect (both timed, from the API change to the first changed outcome).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import TOML from "@iarna/toml";
import { freePort, stopAll, tempDir } from "../dataplane/test/helpers.js";
import { cr, type Cluster } from "./network-env.js";
import { DOMAIN, startFederation, type Federation } from "./network-federation.js";
import { echo, type Orthanc } from "./peers/dicom-peers.js";
import { makeInstance, uid, uidsOf } from "./dicom-files.js";
import * as dimse from "./network-dimse-fixture.js";

const CT = uidsOf(readFileSync(dimse.CT_FILE));
const MR = uidsOf(readFileSync(dimse.MR_FILE));
const NO_STORE = dimse.noStoreRule([dimse.B_PACS]);

let fed: Federation;
let A: Cluster;
let B: Cluster;
let orthanc: Orthanc;
/** gw-a's app-facing DIMSE port (AE GW-A) and gw-b's network DIMSE port (AE PACS-B). */
let dimseA = 0;
let dimseB = 0;
const stops: (() => unknown)[] = [];

/** dcmtk findscu at STUDY level through gw-a: the PatientIDs of the studies that matched. */
async function find(): Promise<{ ok: boolean; patients: string[]; out: string }> {
  const r = await dimse.findThroughA(dimseA, ["PatientID"]);
  const patients = r.matches.map((f) => uidsOf(readFileSync(f)).patientId);
  return { ok: r.code === 0 && !/\b[EF]: /.test(r.out), patients, out: r.out };
}

/** dcmtk storescu of `file` through gw-a, with the response dumped (-d shows its Error Comment). */
async function store(file: string): Promise<{ ok: boolean; out: string }> {
  const r = await dimse.storeThroughA(dimseA, file);
  return { ok: r.code === 0 && /DIMSE Status +: 0x0000: Success/.test(r.out), out: r.out };
}

let probes = 0;
/**
 * A new instance in the CT's study (so C-FIND still finds one study) for each C-STORE tried while
 * a rule is on its way: one stored before the rule lands is not the one asserted on.
 */
function probe(): { file: string; sop: string } {
  const sop = uid(`netdimse-probe-${++probes}-${Date.now()}`);
  const file = join(tempDir("harmony-netdimse-probe-"), "probe.dcm");
  writeFileSync(
    file,
    makeInstance({
      study: CT.study,
      series: uid("netdimse-probes"),
      sop,
      patientId: CT.patientId,
      patientName: "Probe",
    }),
  );
  return { file, sop };
}

const orthancHas = async (sop: string) =>
  ((await (await fetch(`${orthanc.http}/tools/lookup`, { method: "POST", body: sop })).json()) as unknown[]).length > 0;

before(async () => {
  orthanc = await dimse.orthancWithCt(stops);
  dimseA = await freePort();
  dimseB = await freePort();
  fed = await startFederation(stops, () => ({
    a: [
      // The modality-facing endpoint: on the apps listener only, so not in the network's directory.
      cr("HarmonyEndpoint", "org-a", "b-pacs", {
        service: "dicom",
        aeTitle: "GW-A",
        port: dimseA,
        options: { bind_address: "127.0.0.1" },
      }),
      cr("HarmonyPipeline", "org-a", "to-b-pacs", {
        gatewayRef: { name: "gw-a" },
        networks: ["apps"],
        endpoints: [{ name: "b-pacs" }],
        backends: [{ service: "dicom", target: dimse.B_PACS, options: { local_aet: "GW-A" } }],
      }),
    ],
    b: [
      cr("HarmonyEndpoint", "org-b", "pacs", {
        service: "dicom",
        aeTitle: "PACS-B",
        port: dimseB,
        options: { bind_address: "127.0.0.1" },
      }),
      cr("HarmonyPipeline", "org-b", "pacs-pl", {
        gatewayRef: { name: "gw-b" },
        networks: ["harmony"],
        endpoints: [{ name: "pacs" }],
        backends: [
          {
            service: "dicom",
            options: { host: "127.0.0.1", port: orthanc.dicomPort, aet: orthanc.aet, local_aet: "GW-B" },
          },
        ],
      }),
    ],
  }));
  ({ A, B } = fed);
});

after(() => stopAll(stops));

test("B's PACS is in A's directory: gw-b's DIMSE port, AE title and identity", async () => {
  const entry = await fed.eventually("B's pacs in A's directory", async () => {
    const dir = await A.secretKey("org-a", "gw-a-harmony-net", "hospitals.directory.json");
    if (!dir) return undefined;
    return (JSON.parse(dir) as { entries: { uri: string }[] }).entries.find((e) => e.uri === dimse.B_PACS);
  });
  assert.deepEqual(entry, {
    uri: dimse.B_PACS,
    org: "org-b",
    endpoint: "pacs",
    protocol: "dicom",
    address: "127.0.0.1",
    port: dimseB,
    ae_title: "PACS-B",
    identity: `spiffe://${DOMAIN}/org/org-b/gateway/gw-b`,
  });
});

test("C-FIND from org A's modality returns the study Orthanc holds, through harmony://.../org-b/pacs; plain DIMSE at B gets nowhere", async () => {
  const r = await fed.eventually("findscu through gw-a to B's PACS", async () => {
    const x = await find();
    return x.ok && x.patients.length > 0 && x;
  });
  assert.deepEqual(r.patients, [CT.patientId], r.out);
  // B's listener is up (it just served): the directory sends peers there with mutual TLS, and
  // plain DIMSE, which would bypass the identity check and the policies, gets no association.
  assert.equal(echo("PACS-B", dimseB), false, "plain C-ECHO to B's network DIMSE port");
});

test("a deny rule on B's network refuses A's C-STORE naming the rule (status, Error Comment, audit line); C-FIND still works", async (t) => {
  const t0 = Date.now();
  await B.apply(fed.network("B", { policies: [NO_STORE] }));
  const denied = await fed.eventually("C-STORE denied at B", async () => {
    const p = probe();
    const x = await store(p.file);
    return !x.ok && { ...x, sop: p.sop };
  });
  const denyMs = Date.now() - t0;
  // storescu's dump of the C-STORE-RSP: status 0x0124 with the rule in (0000,0902) Error Comment;
  // B's audit line names the rule.
  await dimse.assertRefusedByRule(denied.out, fed.gwB);
  assert.equal(await orthancHas(denied.sop), false, "Orthanc never got the refused instance");
  const r = await find();
  assert.ok(r.ok, r.out);
  assert.deepEqual(r.patients, [CT.patientId]);
  t.diagnostic(`rule added → first C-STORE refused: ${(denyMs / 1000).toFixed(1)} s`);
});

test("removing the rule lets the C-STORE through to Orthanc (timed)", async (t) => {
  assert.equal(await orthancHas(MR.sop), false);
  const t0 = Date.now();
  await B.apply(fed.network("B"));
  await fed.eventually("C-STORE allowed again", async () => {
    const x = await store(dimse.MR_FILE);
    return x.ok && x;
  });
  const allowMs = Date.now() - t0;
  assert.equal(await orthancHas(MR.sop), true, "the instance is in Orthanc");
  t.diagnostic(`rule removed → first C-STORE stored: ${(allowMs / 1000).toFixed(1)} s`);
});

test("removing org A from the network refuses its C-FIND (timed)", async (t) => {
  assert.ok((await find()).ok, "C-FIND works before");
  const t0 = Date.now();
  await A.apply(fed.network("A", { members: { orgs: [] } }));
  const refused = await fed.eventually("C-FIND refused", async () => {
    const x = await find();
    // Not yet refused: matches that came back on an association the reload then aborted.
    return !x.ok && x.patients.length === 0 && x;
  });
  const refuseMs = Date.now() - t0;
  assert.deepEqual(refused.patients, [], refused.out);
  // gw-a no longer loads the network (its identity is gone with it), and its pipeline says why.
  const cm = await A.get<{ data: Record<string, string> }>("/api/v1/namespaces/org-a/configmaps/gw-a-harmony-config");
  assert.equal((TOML.parse(cm!.data["config.toml"]!) as { harmony_networks?: unknown }).harmony_networks, undefined);
  const accepted = await fed.eventually("to-b-pacs not accepted", async () => {
    const p = await A.get<{ status?: { conditions?: { type: string; status: string; message: string }[] } }>(
      "/apis/harmony.runbeam.io/v1alpha1/namespaces/org-a/harmonypipelines/to-b-pacs",
    );
    const c = p?.status?.conditions?.find((x) => x.type === "Accepted");
    return c?.status === "False" && c;
  });
  assert.match(accepted.message, /no harmony network has the domain of harmony:\/\/hospitals\.example\/org-b\/pacs/);
  t.diagnostic(`org A removed → first C-FIND refused: ${(refuseMs / 1000).toFixed(1)} s`);
});
