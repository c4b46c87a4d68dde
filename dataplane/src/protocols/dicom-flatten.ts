/**
 * DICOM JSON ⇄ a flat map, for clients and transforms that want `{"PatientID": "PID1"}` rather
 * than `{"00100020": {"vr": "LO", "Value": ["PID1"]}}`. Single values become scalars, several stay
 * arrays, person names become their Alphabetic form, sequences become arrays of flat maps. The way
 * back takes each attribute's VR from the data dictionary.
 */
import { attribute, type DicomJsonDataset } from "./dicom-json.js";

export type Flat = Record<string, unknown>;

export function flatten(ds: DicomJsonDataset, keys: "tag" | "keyword"): Flat {
  const out: Flat = {};
  for (const [tag, el] of Object.entries(ds)) {
    const name = keys === "keyword" ? (attribute(tag)?.keyword ?? tag) : tag;
    if (el.InlineBinary !== undefined) out[name] = el.InlineBinary;
    else if (el.BulkDataURI !== undefined) out[name] = el.BulkDataURI;
    else {
      const values = (el.Value ?? []).map((v) => {
        if (el.vr === "SQ") return flatten(v as DicomJsonDataset, keys);
        if (el.vr === "PN" && v && typeof v === "object") return (v as { Alphabetic?: string }).Alphabetic ?? "";
        return v;
      });
      out[name] = values.length === 0 ? null : values.length === 1 && el.vr !== "SQ" ? values[0] : values;
    }
  }
  return out;
}

/** A flat map back to DICOM JSON; unknown names are reported, not guessed. */
export function unflatten(flat: Flat): { ds: DicomJsonDataset; unknown: string[] } {
  const ds: DicomJsonDataset = {};
  const unknown: string[] = [];
  for (const [name, value] of Object.entries(flat)) {
    const a = attribute(name);
    if (!a) {
      unknown.push(name);
      continue;
    }
    const vr = a.vr.includes("or") ? a.vr.split(" ")[0]! : a.vr; // "US or SS" → US
    if (value === null || value === undefined || value === "") {
      ds[a.tag] = { vr };
      continue;
    }
    const list = Array.isArray(value) ? value : [value];
    if (vr === "SQ") {
      const items = list.map((item) => unflatten(item as Flat));
      for (const i of items) unknown.push(...i.unknown);
      ds[a.tag] = { vr, Value: items.map((i) => i.ds) };
    } else if (vr === "PN") ds[a.tag] = { vr, Value: list.map((v) => ({ Alphabetic: String(v) })) };
    else ds[a.tag] = { vr, Value: list };
  }
  return { ds, unknown };
}
