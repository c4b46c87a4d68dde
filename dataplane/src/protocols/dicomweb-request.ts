/**
 * A DICOMweb request (PS3.18) read as the DIMSE operation it stands for: QIDO-RS searches are
 * C-FINDs, WADO-RS retrieves are C-GETs (or C-MOVEs), STOW-RS stores are C-STOREs. This is the
 * one model both bridges share: the `dicom` backend executes it against a DIMSE peer, and the
 * `dicom` endpoint produces it from what a modality sends.
 */
import { HttpError } from "../pipeline/errors.js";
import { attribute } from "./dicom-json.js";

export type Level = "STUDY" | "SERIES" | "IMAGE";
/** Modality Worklist: UPS-RS's workitem search (PS3.18 11.9) run as an MWL C-FIND (PS3.4 K). */
export type SearchLevel = Level | "WORKLIST";

export interface SearchOp {
  kind: "search";
  level: SearchLevel;
  /**
   * Matching keys by keyword, DICOM-encoded ("a\\b" for a list, "*" wildcards, "x-y" ranges);
   * a key inside a sequence is a dotted path, e.g. "ScheduledProcedureStepSequence.Modality".
   */
  match: Record<string, string>;
  /** Extra return keys by keyword; "all" asks for every key this level knows. */
  includefield: string[] | "all";
  limit: number | undefined;
  offset: number;
}

export interface RetrieveOp {
  kind: "retrieve";
  level: Level;
  study: string;
  series?: string;
  sop?: string;
  /** metadata: DICOM JSON of each instance instead of the instances themselves. */
  metadata: boolean;
  /** A top-level element's value (8 hex digits), the BulkDataURI the metadata gives. */
  bulkdata?: string;
}

export interface StoreOp {
  kind: "store";
  /** Study the client posted to (instances of other studies are refused, PS3.18 10.5.3). */
  study?: string;
}

export type DicomwebOp = SearchOp | RetrieveOp | StoreOp;

/** Return keys asked for by default (PS3.18 Table 10.6.3-3..5), beyond the path's own UIDs. */
export const DEFAULT_KEYS: Record<SearchLevel, string[]> = {
  WORKLIST: [
    "AccessionNumber",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "ReferringPhysicianName",
    "ScheduledProcedureStepSequence.Modality",
    "ScheduledProcedureStepSequence.ScheduledStationAETitle",
    "ScheduledProcedureStepSequence.ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepSequence.ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence.ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepSequence.ScheduledProcedureStepDescription",
    "ScheduledProcedureStepSequence.ScheduledProcedureStepID",
  ],
  STUDY: [
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
  ],
  SERIES: [
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
  ],
  // Rows, Columns, BitsAllocated and NumberOfFrames are in PS3.18's list too, but some archives
  // (Orthanc 1.10) match nothing when a C-FIND asks for keys they do not index; ask via includefield.
  IMAGE: ["SOPClassUID", "SOPInstanceUID", "InstanceNumber"],
};

const SEARCH_CONTROL = new Set(["limit", "offset", "includefield", "fuzzymatching"]);

export function parseDicomwebRequest(method: string, subpath: string, search: string): DicomwebOp {
  const seg = subpath.replace(/\/+$/, "").split("/").filter(Boolean);
  const params = new URLSearchParams(search);
  if (method === "POST") {
    if (seg[0] === "studies" && seg.length <= 2) return { kind: "store", study: seg[1] };
    throw new HttpError(405, `POST is not allowed on ${subpath}`);
  }
  if (method !== "GET" && method !== "HEAD") throw new HttpError(405, `${method} is not allowed on ${subpath}`);

  // /studies[/{s}[/series[/{se}[/instances[/{i}]]]]] and the study-less /series, /instances
  const [a, s, b, se, c, i, d] = seg;
  const search_ = (level: SearchLevel, fixed: Record<string, string>) => searchOp(level, fixed, params);
  if (a === "workitems" && seg.length === 1) return search_("WORKLIST", {});
  if (a === "studies" && seg.length === 1) return search_("STUDY", {});
  if (a === "series" && seg.length === 1) return search_("SERIES", {});
  if (a === "instances" && seg.length === 1) return search_("IMAGE", {});
  if (a === "studies" && s) {
    if (seg.length === 2) return { kind: "retrieve", level: "STUDY", study: s, metadata: false };
    if (b === "metadata" && seg.length === 3) return { kind: "retrieve", level: "STUDY", study: s, metadata: true };
    if (b === "series" && seg.length === 3) return search_("SERIES", { StudyInstanceUID: s });
    if (b === "instances" && seg.length === 3) return search_("IMAGE", { StudyInstanceUID: s });
    if (b === "series" && se) {
      if (seg.length === 4) return { kind: "retrieve", level: "SERIES", study: s, series: se, metadata: false };
      if (c === "metadata" && seg.length === 5)
        return { kind: "retrieve", level: "SERIES", study: s, series: se, metadata: true };
      if (c === "instances" && seg.length === 5)
        return search_("IMAGE", { StudyInstanceUID: s, SeriesInstanceUID: se });
      if (c === "instances" && i) {
        if (seg.length === 6)
          return { kind: "retrieve", level: "IMAGE", study: s, series: se, sop: i, metadata: false };
        if (d === "metadata" && seg.length === 7)
          return { kind: "retrieve", level: "IMAGE", study: s, series: se, sop: i, metadata: true };
        if (d === "bulkdata" && seg.length === 8 && /^[0-9a-fA-F]{8}$/.test(seg[7]!))
          return { kind: "retrieve", level: "IMAGE", study: s, series: se, sop: i, metadata: false, bulkdata: seg[7] };
      }
    }
  }
  throw new HttpError(
    406,
    `${subpath} cannot be served from a DIMSE peer (study and series rendered images and thumbnails need a DICOMweb origin)`,
    {
      title: "Not Acceptable",
    },
  );
}

function searchOp(level: SearchLevel, fixed: Record<string, string>, params: URLSearchParams): SearchOp {
  const match: Record<string, string> = { ...fixed };
  const include: string[] = [];
  let all = false;
  for (const [k, v] of params) {
    if (k === "includefield") {
      for (const f of v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean)) {
        if (f === "all") all = true;
        else include.push(keyword(f, "includefield"));
      }
      continue;
    }
    if (SEARCH_CONTROL.has(k)) continue;
    const kw = keyword(k, "query parameter");
    // A list of UIDs is comma-separated in QIDO, backslash-separated in DIMSE (PS3.18 8.3.4.1).
    const value = attribute(kw.split(".").pop()!)?.vr === "UI" ? v.split(",").join("\\") : v;
    match[kw] = match[kw] !== undefined && match[kw] !== value ? `${match[kw]}\\${value}` : value;
  }
  const int = (name: string) => {
    const v = params.get(name);
    if (v === null) return undefined;
    if (!/^\d+$/.test(v)) throw new HttpError(400, `${name} must be a non-negative integer, not "${v}"`);
    return Number(v);
  };
  return {
    kind: "search",
    level,
    match,
    includefield: all ? "all" : include,
    limit: int("limit"),
    offset: int("offset") ?? 0,
  };
}

/** A keyword or tag, or a dotted path of them into sequences, as keywords. */
function keyword(name: string, what: string): string {
  return name
    .split(".")
    .map((part) => {
      const a = attribute(part);
      if (!a) throw new HttpError(400, `${what} "${name}" is not a DICOM attribute keyword or tag`);
      return a.keyword;
    })
    .join(".");
}
