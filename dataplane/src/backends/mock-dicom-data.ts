/**
 * The fixed test PACS of Harmony's `mock_dicom` backend: one CT study of patient PID156695
 * ("Doe^John", 2024-10-15 12:00, "Mock CT Study"), three series of five CT Image Storage instances,
 * with the UIDs of Harmony's dev/samples/study_1 so its example configs and tests find what they
 * expect. Matching is by equality on the keys Harmony's mock honoured (PatientID, the UIDs,
 * Modality, InstanceNumber); other keys do not narrow the result, as there.
 */
import type { DicomJsonDataset } from "../protocols/dicom-json.js";

export const MOCK_STUDY = "1.2.826.0.1.3680043.9.7133.3280065491876470";
export const MOCK_PATIENT = "PID156695";
const CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2";
const P = "1.2.826.0.1.3680043.9.7133.";

export const MOCK_SERIES = [
  {
    uid: `${P}1734441961856038`,
    number: 1,
    instances: ["2677554575065585", "1494401914668643", "1578071133979400", "2004958842253129", "2456165115170247"],
  },
  {
    uid: `${P}2369827755580483`,
    number: 2,
    instances: ["3195857377419654", "9552313113374485", "2140212232603664", "2298005625221305", "2683978666224479"],
  },
  {
    uid: `${P}1326436931051844`,
    number: 3,
    instances: ["7886317424438469", "2847621385214465", "2459625263340059", "1040499691138526", "3208456549831196"],
  },
].map((s) => ({ ...s, instances: s.instances.map((i) => P + i) }));

const el = (vr: string, v: string | { Alphabetic: string }) => ({ vr, Value: [v] });

function study(): DicomJsonDataset {
  return {
    "0020000D": el("UI", MOCK_STUDY),
    "00100020": el("LO", MOCK_PATIENT),
    "00100010": el("PN", { Alphabetic: "Doe^John" }),
    "00080020": el("DA", "20241015"),
    "00080030": el("TM", "120000"),
    "00081030": el("LO", "Mock CT Study"),
    "00200010": el("SH", "1"),
    "00080061": el("CS", "CT"),
  };
}

function series(s: (typeof MOCK_SERIES)[number]): DicomJsonDataset {
  return {
    "0020000D": el("UI", MOCK_STUDY),
    "0020000E": el("UI", s.uid),
    "00200011": el("IS", String(s.number)),
    "00080060": el("CS", "CT"),
    "0008103E": el("LO", `Series ${s.number}`),
    "00201209": el("IS", String(s.instances.length)),
  };
}

function instance(s: (typeof MOCK_SERIES)[number], i: number): DicomJsonDataset {
  return {
    "0020000D": el("UI", MOCK_STUDY),
    "0020000E": el("UI", s.uid),
    "00080018": el("UI", s.instances[i]!),
    "00200013": el("IS", String(i + 1)),
    "00080016": el("UI", CT_IMAGE),
    "00200011": el("IS", String(s.number)),
    "00100020": el("LO", MOCK_PATIENT),
    "00080060": el("CS", "CT"),
  };
}

/** Keys by keyword, as a DICOMweb search or a flattened C-FIND identifier gives them ("" = return key). */
export type Keys = Record<string, string>;

const given = (k: Keys, name: string) => (k[name] ? k[name] : undefined);

export function findStudies(k: Keys): DicomJsonDataset[] {
  const s = given(k, "StudyInstanceUID");
  const p = given(k, "PatientID");
  if ((s && s !== MOCK_STUDY) || (p && p !== MOCK_PATIENT)) return [];
  return [study()];
}

export function findSeries(k: Keys): DicomJsonDataset[] {
  if (given(k, "StudyInstanceUID") !== MOCK_STUDY) return [];
  const uid = given(k, "SeriesInstanceUID");
  const modality = given(k, "Modality");
  return MOCK_SERIES.filter((s) => (!uid || s.uid === uid) && (!modality || modality === "CT")).map(series);
}

export function findInstances(k: Keys): DicomJsonDataset[] {
  if (given(k, "StudyInstanceUID") !== MOCK_STUDY) return [];
  const uid = given(k, "SeriesInstanceUID");
  const sop = given(k, "SOPInstanceUID");
  const num = given(k, "InstanceNumber");
  return MOCK_SERIES.filter((s) => !uid || s.uid === uid).flatMap((s) =>
    s.instances
      .map((_, i) => i)
      .filter((i) => (!sop || s.instances[i] === sop) && (!num || Number(num) === i + 1))
      .map((i) => instance(s, i)),
  );
}

/**
 * Harmony's choice of C-FIND level from a flattened identifier (tag → first value, "" for a
 * return key), then its answer: IMAGE, SERIES or STUDY; PATIENT level finds nothing.
 */
export function findByIdentifier(params: Record<string, string>): DicomJsonDataset[] {
  const has = (t: string) => t in params;
  const val = (t: string) => !!params[t];
  const k: Keys = {
    StudyInstanceUID: params["0020000D"] ?? "",
    SeriesInstanceUID: params["0020000E"] ?? "",
    SOPInstanceUID: params["00080018"] ?? "",
    PatientID: params["00100020"] ?? "",
    Modality: params["00080060"] ?? "",
    InstanceNumber: params["00200013"] ?? "",
  };
  if (val("00080018") || (has("00080018") && (val("0020000D") || val("0020000E")))) {
    // Harmony's mock needs a series for instances.
    return val("0020000E") ? findInstances(k) : [];
  }
  if (val("0020000E") || (has("0020000E") && val("0020000D"))) return findSeries(k);
  if (has("0020000D")) return findStudies(k);
  return [];
}
