/**
 * The healthcare examples run as written: each config in examples/ is started unchanged against
 * peers on the ports it names (Orthanc 18042/14242, storescp 11113, the FHIR peer 8103), and one
 * real flow goes through it. Those ports sit below the ephemeral range the other tests draw from.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startFhirServer, type FhirPeer } from "./peers/fhir-server.js";
import { startOrthanc, startStorescp, SAMPLES, type Orthanc, type StoreScp } from "./peers/dicom-peers.js";
import { multipartRelated, uidsOf } from "./dicom-files.js";
import { ROOT, startDataplane, type Dataplane } from "../dataplane/test/helpers.js";

let fhir: FhirPeer;
let orthanc: Orthanc;
let storescp: StoreScp;
const ct = readFileSync(join(SAMPLES, "CT_small.dcm"));
const CT = uidsOf(ct);
const MR = uidsOf(readFileSync(join(SAMPLES, "MR_small.dcm")));
const GW = "http://127.0.0.1:8080";

before(async () => {
  fhir = await startFhirServer(8103);
  orthanc = await startOrthanc({ httpPort: 18042, dicomPort: 14242 });
  storescp = await startStorescp("STORESCP", 11113);
});

after(async () => {
  await fhir?.close();
  await Promise.all([orthanc?.stop(), storescp?.stop()]);
});

async function withExample(name: string, fn: (dp: Dataplane) => Promise<void>): Promise<void> {
  const dp = await startDataplane(join(ROOT, "examples", name, "config.toml"));
  try {
    await fn(dp);
  } finally {
    await dp.stop();
  }
}

test("examples/fhir-gateway", () =>
  withExample("fhir-gateway", async () => {
    const created = await fetch(`${GW}/fhir/Patient`, {
      method: "POST",
      headers: { "content-type": "application/fhir+json" },
      body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Example" }] }),
    });
    assert.equal(created.status, 201);
    assert.match(created.headers.get("location") ?? "", /^http:\/\/127\.0\.0\.1:8080\/fhir\/Patient\//);
    const bundle = (await (await fetch(`${GW}/fhir/Patient?family=Example`)).json()) as {
      total: number;
      link: { url: string }[];
    };
    assert.equal(bundle.total, 1);
    assert.ok(bundle.link.every((l) => l.url.startsWith(`${GW}/fhir/`)));
  }));

test("examples/dicomweb-gateway", () =>
  withExample("dicomweb-gateway", async () => {
    const { body, contentType } = multipartRelated([ct]);
    const stow = await fetch(`${GW}/dicomweb/studies`, {
      method: "POST",
      headers: { "content-type": contentType },
      body,
    });
    assert.equal(stow.status, 200);
    const studies = (await (await fetch(`${GW}/dicomweb/studies?PatientID=${CT.patientId}`)).json()) as unknown[];
    assert.equal(studies.length, 1);
  }));

test("examples/dicomweb-to-pacs", () =>
  withExample("dicomweb-to-pacs", async () => {
    const res = await fetch(`${GW}/pacs/studies?PatientID=${CT.patientId}`);
    assert.equal(res.status, 200);
    const studies = (await res.json()) as Record<string, { Value: string[] }>[];
    assert.equal(studies[0]!["0020000D"]!.Value[0], CT.study);
    const inst = await fetch(`${GW}/pacs/studies/${CT.study}`);
    assert.equal(inst.status, 200);
    assert.match(inst.headers.get("content-type") ?? "", /^multipart\/related/);
  }));

test("examples/targets-and-peers: FHIR and PACS through target_ref, the modality listener through peer_ref", () =>
  withExample("targets-and-peers", async (dp) => {
    assert.equal((await fetch(`${orthanc.http}/instances`, { method: "POST", body: ct })).status, 200);
    const created = await fetch(`${GW}/fhir/Patient`, {
      method: "POST",
      headers: { "content-type": "application/fhir+json" },
      body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Targeted" }] }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    assert.match(created.headers.get("location") ?? "", /^http:\/\/127\.0\.0\.1:8080\/fhir\/Patient\//);
    const res = await fetch(`${GW}/pacs/studies?PatientID=${CT.patientId}`);
    assert.equal(res.status, 200);
    const studies = (await res.json()) as Record<string, { Value: string[] }>[];
    assert.equal(studies[0]!["0020000D"]!.Value[0], CT.study);
    await dp.waitForLog((l) => l.message === "DICOM listener started");
    assert.equal(spawnSync("echoscu", ["-aet", "MODALITY", "-aec", "HARMONY", "127.0.0.1", "11114"]).status, 0);
  }));

test("examples/modality-to-dicomweb", () =>
  withExample("modality-to-dicomweb", async (dp) => {
    await dp.waitForLog((l) => l.message === "DICOM listener started");
    const at = ["127.0.0.1", "11120"];
    assert.equal(spawnSync("echoscu", ["-aet", "MODALITY", "-aec", "HARMONY", ...at]).status, 0);
    const store = spawnSync("storescu", ["-aet", "MODALITY", "-aec", "HARMONY", ...at, join(SAMPLES, "MR_small.dcm")]);
    assert.equal(store.status, 0, String(store.stderr));
    const move = spawnSync("movescu", [
      ...["-S", "-aet", "MODALITY", "-aec", "HARMONY", "-aem", "STORESCP"],
      ...["-k", "QueryRetrieveLevel=STUDY", "-k", `StudyInstanceUID=${MR.study}`],
      ...at,
    ]);
    assert.equal(move.status, 0, String(move.stderr));
    assert.ok(
      readdirSync(storescp.dir).some((f) => f.includes(MR.sop)),
      "storescp received the study",
    );
  }));

test("examples/jmix-export: a package over C-GET, then a FHIR ImagingStudy linking to it", () =>
  withExample("jmix-export", async () => {
    const store = join(ROOT, "examples/jmix-export/tmp");
    try {
      assert.equal(
        (
          await fetch(`${orthanc.http}/instances`, {
            method: "POST",
            body: readFileSync(join(SAMPLES, "MR_small.dcm")),
          })
        ).status,
        200,
      );
      const pkg = await fetch(`${GW}/jmix/api/jmix?studyInstanceUid=${MR.study}`);
      assert.equal(pkg.status, 200, await pkg.clone().text());
      assert.equal(pkg.headers.get("content-type"), "application/zip");
      const id = pkg.headers.get("x-jmix-id")!;
      await pkg.arrayBuffer();

      const res = await fetch(`${GW}/imaging/api/jmix/${id}/metadata`);
      assert.equal(res.status, 200, await res.clone().text());
      const study = (await res.json()) as {
        resourceType: string;
        id: string;
        identifier: { system: string; value: string }[];
        subject: { identifier: { value: string } };
        series: { uid: string; modality: { code: string }; numberOfInstances: number }[];
        contained: { resourceType: string; address: string }[];
        endpoint: { reference: string }[];
      };
      assert.equal(study.resourceType, "ImagingStudy");
      assert.deepEqual(study.identifier, [{ system: "urn:dicom:uid", value: `urn:oid:${MR.study}` }]);
      assert.equal(study.subject.identifier.value, MR.patientId);
      assert.deepEqual(
        study.series.map((s) => [s.uid, s.modality.code, s.numberOfInstances]),
        [[MR.series, "MR", 1]],
      );
      assert.deepEqual(study.endpoint, [{ reference: "#jmix" }]);
      const address = study.contained[0]!.address;
      assert.equal(address, `${GW}/jmix/api/jmix/${id}`);

      // A real FHIR server accepts it, and the link it stores leads back to the package.
      const put = await fetch(`${fhir.base}/ImagingStudy/${study.id}`, {
        method: "PUT",
        headers: { "content-type": "application/fhir+json" },
        body: JSON.stringify(study),
      });
      assert.ok(put.status === 201 || put.status === 200, `${put.status} ${await put.clone().text()}`);
      const stored = (await (await fetch(`${fhir.base}/ImagingStudy/${study.id}`)).json()) as typeof study;
      const zip = await fetch(stored.contained[0]!.address);
      assert.equal(zip.status, 200, await zip.clone().text());
      assert.equal(zip.headers.get("x-jmix-id"), id);
      await zip.arrayBuffer();
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  }));
