/**
 * Attribute names and the DICOM JSON model (PS3.18 Annex F). DICOMweb speaks tags or keywords
 * (`00100020` or `PatientID`) and JSON; dcmjs-dimse speaks "naturalized" keyword objects. These
 * helpers translate between the two using dcmjs's data dictionary.
 */
import dcmjs, { type DicomJsonDataset } from "dcmjs";

const dict = dcmjs.data.DicomMetaDictionary;

export interface Attribute {
  tag: string; // "00100020"
  keyword: string; // "PatientID"
  vr: string;
}

/** A keyword or an 8-hex-digit tag (any case), or undefined when the dictionary does not know it. */
export function attribute(name: string): Attribute | undefined {
  if (/^[0-9a-fA-F]{8}$/.test(name)) {
    const e = dict.dictionary[dict.punctuateTag(name.toUpperCase())];
    return e ? { tag: name.toUpperCase(), keyword: e.name, vr: e.vr } : undefined;
  }
  // Own keys only: "constructor" or "__proto__" from a query string or a JSON body would otherwise
  // find Object.prototype's members and crash the lookup (a 500 instead of a 400).
  const e = Object.hasOwn(dict.nameMap, name) ? dict.nameMap[name] : undefined;
  return e ? { tag: dict.unpunctuateTag(e.tag), keyword: e.name, vr: e.vr } : undefined;
}

const NUMERIC = new Set(["IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"]);

/** Naturalized elements (as dcmjs-dimse returns them) → DICOM JSON, cleaned to the standard's form. */
export function toDicomJson(elements: Record<string, unknown>): DicomJsonDataset {
  const out = dict.denaturalizeDataset(elements);
  for (const el of Object.values(out)) clean(el);
  return out;
}

/** A DICOM JSON data set from dcmjs's reader, cleaned the same way (and without its `_rawValue`s). */
export function cleanJson(ds: DicomJsonDataset): DicomJsonDataset {
  for (const el of Object.values(ds)) clean(el);
  return ds;
}

function clean(el: DicomJsonDataset[string]): void {
  delete (el as { _rawValue?: unknown })._rawValue;
  if (el.Value === null || el.Value === undefined) {
    delete el.Value; // dcmjs makes a zero-length IS or DS `"Value": null`
    return;
  }
  let values = el.Value;
  if (el.vr === "SQ") {
    for (const item of values as DicomJsonDataset[]) for (const e of Object.values(item)) clean(e);
  } else if (NUMERIC.has(el.vr)) {
    values = values.map((v) => (typeof v === "string" ? (v.trim() === "" ? null : Number(v)) : v));
  }
  // An empty attribute has no Value at all in DICOM JSON (F.2.5), not [""] or [null]; an empty
  // value among others is null, in its place (ORIGINAL\\AXIAL has three values).
  values = values.map((v) => (v === "" || v === undefined ? null : v));
  if (values.every((v) => v === null)) delete el.Value;
  else el.Value = values;
}

/** First value of an attribute in DICOM JSON, as a string. */
export function first(ds: DicomJsonDataset, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "object" && "Alphabetic" in v) return String(v.Alphabetic);
  return typeof v === "string" ? v : JSON.stringify(v);
}

export type { DicomJsonDataset };
