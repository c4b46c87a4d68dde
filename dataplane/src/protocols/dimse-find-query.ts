/**
 * A C-FIND identifier as the QIDO-RS search it stands for (PS3.18 §8.3.4, PS3.4 §C.6): the level
 * picks the resource, matching keys become parameters, empty keys become includefield.
 */
import { attribute, type DicomJsonDataset } from "./dicom-json.js";
import { FIND, WORKLIST } from "./dimse-sop-classes.js";

export type Elements = Record<string, unknown>;

export function str(v: unknown): string | undefined {
  if (typeof v === "string" && v !== "") return v;
  if (Array.isArray(v) && typeof v[0] === "string") return v[0];
  return undefined;
}

export function findQuery(
  el: Elements,
  sopClass: string,
): { path: string; search: string; level: string | undefined; patientLevel: boolean } | undefined {
  const worklist = sopClass === WORKLIST;
  const level = worklist ? "WORKLIST" : (str(el.QueryRetrieveLevel)?.trim().toUpperCase() ?? "STUDY");
  // The Study Root model has no PATIENT level (PS3.4 §C.6.2): "identifier does not match SOP class".
  if (level === "PATIENT" && sopClass !== FIND[0]) return undefined;
  const study = str(el.StudyInstanceUID);
  const series = str(el.SeriesInstanceUID);
  let path: string;
  if (worklist) path = "/workitems";
  else if (level === "PATIENT" || level === "STUDY") path = "/studies";
  else if (level === "SERIES") path = study && !study.includes("\\") ? `/studies/${study}/series` : "/series";
  else if (level === "IMAGE")
    path =
      study && series && !study.includes("\\") && !series.includes("\\")
        ? `/studies/${study}/series/${series}/instances`
        : "/instances";
  else return undefined;
  const params = new URLSearchParams();
  const include: string[] = [];
  // Keys inside a sequence item become dotted paths (PS3.18 8.3.4.1: "SequenceKeyword.Keyword").
  const walk = (elements: Elements, prefix: string) => {
    for (const [k, v] of Object.entries(elements)) {
      if (k === "QueryRetrieveLevel" || k === "SpecificCharacterSet" || k.startsWith("_")) continue;
      const a = attribute(k);
      if (!a) continue;
      if (a.vr === "SQ") {
        const item = Array.isArray(v) ? (v[0] as Elements | undefined) : undefined;
        if (item && Object.keys(item).some((x) => !x.startsWith("_"))) walk(item, `${prefix}${k}.`);
        else include.push(prefix + k);
        continue;
      }
      if (!prefix && (path.includes(`/${str(v)}/`) || path.endsWith(`/${str(v)}`))) continue; // already in the path
      const value = pnOrString(v);
      if (value === undefined || value === "") include.push(prefix + k);
      else params.append(prefix + k, value.split("\\").join(a.vr === "UI" ? "," : "\\"));
    }
  };
  walk(el, "");
  // One parameter per attribute: PS3.18 §8.3.4.3 allows a comma list too, but origins such as
  // Orthanc read only the repeated form.
  for (const k of include) params.append("includefield", k);
  const search = params.toString();
  return {
    path,
    search: search ? `?${search}` : "",
    level: worklist ? undefined : level,
    patientLevel: level === "PATIENT",
  };
}

function pnOrString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) {
    const parts = v.map((x) =>
      typeof x === "object" && x && "Alphabetic" in x ? String((x as { Alphabetic: unknown }).Alphabetic) : String(x),
    );
    return parts.join("\\");
  }
  if (v && typeof v === "object" && "Alphabetic" in v) return String(v.Alphabetic);
  return undefined;
}

export function uniqueBy(list: DicomJsonDataset[], tag: string): DicomJsonDataset[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const k = JSON.stringify(d[tag]?.Value ?? null);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
