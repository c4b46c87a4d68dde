/**
 * What the two DIMSE-across-a-Harmony-network suites share (network-dimse.test.ts on hand-written
 * configs, network-dimse-e2e.test.ts on operator-rendered ones): the sample files, Orthanc holding
 * the CT, the rule that lets org A query B's PACS but not store in it, dcmtk's findscu and
 * storescu as org A's modality calling gw-a (AE GW-A), and what a refused C-STORE must show.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { tempDir, type Dataplane } from "../dataplane/test/helpers.js";
import { SAMPLES, dcmtk, startOrthanc, type Orthanc } from "./peers/dicom-peers.js";
import { DOMAIN } from "./network-fixture.js";

export const CT_FILE = join(SAMPLES, "CT_small.dcm");
export const MR_FILE = join(SAMPLES, "MR_small.dcm");
export const B_PACS = `harmony://${DOMAIN}/org-b/pacs`;

/** The directory rule: org A may not C-STORE at these endpoints (STOW-RS counts as C-STORE). */
export const noStoreRule = (endpoints: string[]) => ({
  name: "a-may-query-but-not-store-at-b-pacs",
  action: "deny",
  source: { orgs: ["org-a"] },
  destination: { endpoints },
  operations: [{ protocol: "dicom", commands: ["C-STORE"] }],
});

/** Orthanc holding the CT sample (one study), stopped with the suite. */
export async function orthancWithCt(stops: (() => unknown)[]): Promise<Orthanc> {
  const orthanc = await startOrthanc();
  stops.push(() => orthanc.stop());
  const up = await fetch(`${orthanc.http}/instances`, { method: "POST", body: readFileSync(CT_FILE) });
  assert.equal(up.status, 200);
  return orthanc;
}

/** findscu at STUDY level through gw-a on `port`, asking for StudyInstanceUID and `keys`: the matches' files. */
export async function findThroughA(
  port: number,
  keys: string[] = [],
): Promise<{ code: number | null; out: string; matches: string[] }> {
  const dir = tempDir("harmony-net-findscu-");
  // Study level, as org A's modality (MODALITY) calling gw-a (GW-A); -X writes each match to `dir`.
  const query = ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", ...keys].flatMap((k) => ["-k", k]);
  const calling = ["-S", "-aet", "MODALITY", "-aec", "GW-A", "-X", "-od", dir];
  const r = await dcmtk("findscu", [...calling, ...query, "127.0.0.1", String(port)]);
  return { ...r, matches: readdirSync(dir).map((f) => join(dir, f)) };
}

/** storescu of `file` through gw-a on `port`, with the response dumped (-d shows its Error Comment). */
export function storeThroughA(port: number, file: string): Promise<{ code: number | null; out: string }> {
  return dcmtk("storescu", ["-d", "-aet", "MODALITY", "-aec", "GW-A", "127.0.0.1", String(port), file]);
}

/**
 * A C-STORE refused by the rule at B: storescu's dump shows status 0x0124 with the rule in
 * (0000,0902) Error Comment, as gw-a relayed it, and gw-b's audit line names the rule, org A's
 * gateway and the destination.
 */
export async function assertRefusedByRule(out: string, gwB: Dataplane, destination = B_PACS): Promise<void> {
  assert.match(out, /DIMSE Status +: 0x0124: Refused: Not authorized/, out.slice(-3000));
  assert.match(out, /\(0000,0902\) LO \[rule a-may-query-but-not-store-at-b-pacs: C-STORE denied/, out.slice(-3000));
  const line = await gwB.waitForLog((l) => l.message === "network policy denied" && l.operation === "C-STORE");
  assert.equal(line.rule, "a-may-query-but-not-store-at-b-pacs");
  assert.equal(line.peer, `spiffe://${DOMAIN}/org/org-a/gateway/gw-a`);
  assert.equal(line.destination, destination);
}
