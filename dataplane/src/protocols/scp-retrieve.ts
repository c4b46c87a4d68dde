/**
 * What a C-GET or C-MOVE identifier asks for, as WADO-RS resources (PS3.4 §C.4.2.2.1, §C.4.3.2.1):
 * unique keys may hold lists of UIDs (`a\b`, one retrieve each), Patient Root retrieves at
 * PATIENT level go through the patient's studies (found with QIDO-RS), and the SOP Instance UIDs
 * that will come are counted up front (QIDO-RS again), so that pending responses can say how many
 * sub-operations remain and a final failure can list the instances that did not go.
 */
import { Readable } from "node:stream";
import type { ProxyResponse } from "../pipeline/context.js";
import type { DicomJsonDataset } from "./dicom-json.js";
import { Dataset, constants, type DimseDataset } from "./dimse.js";
import { boundaryOf, readParts } from "./multipart.js";
import { bodyOf, dimseStatusFor, drain } from "./scp-response.js";

const { Status } = constants;

/** A QIDO-RS search through the pipeline: the matches, or undefined when it failed. */
export type Search = (path: string, search: string) => Promise<DicomJsonDataset[] | undefined>;

export interface RetrievePlan {
  /** WADO-RS resources to retrieve, one after the other. */
  paths: string[];
  /** Every SOP Instance UID the retrieve should bring, when the origin could say. */
  expected: string[] | undefined;
}

const PATIENT_ROOT = ["1.2.840.10008.5.1.4.1.2.1.2", "1.2.840.10008.5.1.4.1.2.1.3"]; // MOVE, GET
const IDENTIFIER_DOES_NOT_MATCH = 0xa900;

/** The values of a unique key: a list of UIDs (PS3.4 §C.2.2.2.2) as dcmjs gives it, string or array. */
function values(v: unknown): string[] {
  const list = Array.isArray(v) ? v : typeof v === "string" ? v.split("\\") : [];
  return list.map((x) => (typeof x === "string" ? x.trim() : "")).filter(Boolean);
}

const uidsOf = (matches: DicomJsonDataset[], tag: string) =>
  matches.map((m) => m[tag]?.Value?.[0]).filter((v): v is string => typeof v === "string");

export async function planRetrieve(
  el: Record<string, unknown>,
  sopClass: string,
  search: Search,
): Promise<RetrievePlan | { status: number }> {
  const level = (typeof el.QueryRetrieveLevel === "string" ? el.QueryRetrieveLevel : "").trim().toUpperCase();
  const studies = values(el.StudyInstanceUID);
  const series = values(el.SeriesInstanceUID);
  const sops = values(el.SOPInstanceUID);
  let targets: { study: string; series?: string; sop?: string }[];
  if (level === "PATIENT") {
    const patients = values(el.PatientID);
    if (!PATIENT_ROOT.includes(sopClass) || patients.length === 0) return { status: IDENTIFIER_DOES_NOT_MATCH };
    targets = [];
    for (const id of patients) {
      const found = await search("/studies", `?${new URLSearchParams({ PatientID: id }).toString()}`);
      if (!found) return { status: 0xc000 };
      for (const s of uidsOf(found, "0020000D")) targets.push({ study: s });
    }
  } else if (level === "STUDY" || (!level && series.length === 0)) {
    if (studies.length === 0) return { status: IDENTIFIER_DOES_NOT_MATCH };
    targets = studies.map((study) => ({ study }));
  } else if (level === "SERIES" || (!level && sops.length === 0)) {
    if (studies.length !== 1 || series.length === 0) return { status: IDENTIFIER_DOES_NOT_MATCH };
    targets = series.map((s) => ({ study: studies[0]!, series: s }));
  } else if (level === "IMAGE" || !level) {
    if (studies.length !== 1 || series.length !== 1 || sops.length === 0) return { status: IDENTIFIER_DOES_NOT_MATCH };
    targets = sops.map((sop) => ({ study: studies[0]!, series: series[0]!, sop }));
  } else {
    return { status: IDENTIFIER_DOES_NOT_MATCH };
  }
  const paths = targets.map(
    (t) => `/studies/${t.study}` + (t.series ? `/series/${t.series}` + (t.sop ? `/instances/${t.sop}` : "") : ""),
  );
  let expected: string[] | undefined = [];
  for (const t of targets) {
    if (t.sop) {
      expected.push(t.sop);
      continue;
    }
    const query = t.series ? `?${new URLSearchParams({ SeriesInstanceUID: t.series }).toString()}` : "";
    const found = await search(`/studies/${t.study}/instances`, query);
    if (!found) {
      expected = undefined; // the count is a courtesy: the retrieve goes on without it
      break;
    }
    expected.push(...uidsOf(found, "00080018"));
  }
  return { paths, expected };
}

/**
 * Sub-operation counts of a C-GET or C-MOVE (PS3.4 §C.4.2.1.6, §C.4.3.1.6): remaining ones from
 * the instances expected, and the final failure's Failed SOP Instance UID List, which names both
 * the instances that failed and those expected that never came.
 */
export class Progress {
  completed = 0;
  failed = 0;
  warnings = 0;
  private expected: string[] | undefined;
  private readonly seen = new Set<string>();
  private readonly failedUids: string[] = [];

  expect(uids: string[] | undefined): void {
    this.expected = uids;
  }

  done(sop: string | undefined, status: number): void {
    if (sop) this.seen.add(sop);
    if (status === Status.Success) this.completed++;
    else if ((status & 0xf000) === 0xb000 || status === 0x0001 || status === 0x0107 || status === 0x0116)
      this.warnings++;
    else {
      this.failed++;
      if (sop) this.failedUids.push(sop);
    }
  }

  private get missing(): string[] {
    return (this.expected ?? []).filter((u) => !this.seen.has(u));
  }

  finalStatus(): number {
    for (const u of this.missing) {
      this.seen.add(u);
      this.failed++;
      this.failedUids.push(u);
    }
    if (this.failed === 0) return this.warnings ? 0xb000 : Status.Success;
    return this.completed + this.warnings ? 0xb000 : 0xa702;
  }

  fill<R extends ProgressResponse>(r: R, status: number): R {
    r.setStatus(status);
    r.setCompleted(this.completed);
    r.setFailures(this.failed);
    r.setWarnings(this.warnings);
    const total = this.expected ? Math.max(this.expected.length, this.seen.size) : undefined;
    const remaining = total === undefined ? 0 : Math.max(0, total - this.completed - this.failed - this.warnings);
    r.setRemaining(status === Status.Pending ? remaining : 0);
    if (status !== Status.Pending && status !== Status.Success && this.failedUids.length)
      r.setDataset(new Dataset({ FailedSOPInstanceUIDList: this.failedUids }));
    return r;
  }
}

interface ProgressResponse {
  setStatus(s: number): void;
  setCompleted(n: number): void;
  setFailures(n: number): void;
  setWarnings(n: number): void;
  setRemaining(n: number): void;
  setDataset(d: DimseDataset): void;
}

/** One request through the pipeline on behalf of an association's operation (labelled with it). */
export type RunAs = (
  op: string,
  req: { method: string; path: string; search: string; headers: Record<string, string> },
) => Promise<ProxyResponse>;

/** What a C-GET or C-MOVE request offers this module. */
export interface RetrieveRequest {
  getDataset(): DimseDataset | undefined;
  getAffectedSopClassUid(): string;
}

/** QIDO-RS through the pipeline, for planning a retrieve. */
async function qido(op: string, path: string, search: string, runAs: RunAs): Promise<DicomJsonDataset[] | undefined> {
  const res = await runAs(op, { method: "GET", path, search, headers: { accept: "application/dicom+json" } });
  if (res.status === 204) return [];
  if (res.status !== 200) {
    drain(res);
    return undefined;
  }
  return JSON.parse((await bodyOf(res)).toString("utf8")) as DicomJsonDataset[];
}

/** Runs the WADO-RS retrieves the identifier stands for and yields the Part 10 instances as they stream in. */
export async function retrieveInstances(
  op: "C-GET" | "C-MOVE",
  request: RetrieveRequest,
  runAs: RunAs,
): Promise<{ status: number; expected?: string[]; instances?: AsyncGenerator<Buffer> }> {
  const el = request.getDataset()?.getElements() ?? {};
  const plan = await planRetrieve(el, request.getAffectedSopClassUid(), (path, search) =>
    qido(op, path, search, runAs),
  );
  if ("status" in plan) return plan;
  const fetchOne = async (path: string) => {
    const res = await runAs(op, {
      method: "GET",
      path,
      search: "",
      // As stored: an origin asked for its default (Explicit VR Little Endian) transcodes, and fails
      // on what it cannot decode; sub-operations transcode uncompressed data themselves (dimse.ts).
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    const boundary = boundaryOf(String(res.headers["content-type"] ?? ""));
    if ((res.status !== 200 && res.status !== 206) || !boundary || !res.body) {
      drain(res);
      return { status: res.status };
    }
    return { status: res.status, source: Buffer.isBuffer(res.body) ? Readable.from([res.body]) : res.body, boundary };
  };
  // The first retrieve is made before answering, so that a failure of the only one is a status.
  const first = plan.paths.length ? await fetchOne(plan.paths[0]!) : undefined;
  if (plan.paths.length === 1 && first && !first.source && first.status !== 404)
    return { status: dimseStatusFor(first.status) || 0xc000 };
  const rest = plan.paths.slice(1);
  async function* instances() {
    for (let next = first; next;) {
      if (next.source)
        for await (const part of readParts(next.source, next.boundary, 4 * 1024 * 1024 * 1024)) yield part.body;
      const path = rest.shift();
      next = path ? await fetchOne(path) : undefined;
    }
  }
  return { status: Status.Success, expected: plan.expected, instances: instances() };
}
