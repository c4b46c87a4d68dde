/** Test-side DICOM helpers: UIDs of a Part 10 file, a deterministic generated instance, multipart bodies. */
import { createHash } from "node:crypto";
import dcmjs from "dcmjs";

const { DicomMessage, DicomMetaDictionary, DicomDict } = dcmjs.data;

export interface Uids {
  study: string;
  series: string;
  sop: string;
  sopClass: string;
  patientId: string;
}

export function uidsOf(file: Buffer): Uids {
  const ab = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
  const { dict } = DicomMessage.readFile(ab as ArrayBuffer, { untilTag: "7FE00010" });
  const v = (tag: string) => {
    const x = dict[tag]?.Value?.[0];
    return typeof x === "string" ? x : x === undefined ? "" : JSON.stringify(x);
  };
  return {
    study: v("0020000D"),
    series: v("0020000E"),
    sop: v("00080018"),
    sopClass: v("00080016"),
    patientId: v("00100020"),
  };
}

/** `2.25.<decimal>` UIDs need no registered root; derived from a name they are stable across runs. */
export const uid = (name: string) =>
  "2.25." + BigInt("0x" + createHash("sha256").update(`harmony-test-${name}`).digest("hex").slice(0, 32)).toString();

/** A Secondary Capture instance (dciodvfy-clean) with `pixelBytes` of 8-bit pixels. */
export function makeInstance(o: {
  study: string;
  series: string;
  sop: string;
  patientId: string;
  patientName: string;
  pixelBytes?: number;
}): Buffer {
  const n = o.pixelBytes ?? 4;
  const cols = n >= 4096 ? 4096 : n === 4 ? 2 : n;
  const rows = Math.max(1, Math.floor(n / cols));
  const pixels = new Uint8Array(rows * cols);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 31) & 0xff;
  const ds = {
    SpecificCharacterSet: "ISO_IR 100",
    SOPClassUID: "1.2.840.10008.5.1.4.1.1.7",
    SOPInstanceUID: o.sop,
    StudyDate: "20240101",
    StudyTime: "120000",
    AccessionNumber: `ACC${o.patientId}`.slice(0, 16),
    Modality: "OT",
    ConversionType: "WSD",
    ReferringPhysicianName: "",
    Laterality: "",
    PatientOrientation: "",
    PatientName: o.patientName,
    PatientID: o.patientId,
    PatientBirthDate: "19700101",
    PatientSex: "O",
    StudyInstanceUID: o.study,
    SeriesInstanceUID: o.series,
    StudyID: "1",
    SeriesNumber: "1",
    InstanceNumber: "1",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: rows,
    Columns: cols,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    PixelData: [pixels.buffer],
    _vrMap: { PixelData: "OB" },
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: ds.SOPClassUID,
    MediaStorageSOPInstanceUID: o.sop,
    TransferSyntaxUID: "1.2.840.10008.1.2.1",
    ImplementationClassUID: "2.25.1",
    ImplementationVersionName: "HARMONY_TEST",
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(ds);
  return Buffer.from(dict.write());
}

export function multipartRelated(
  parts: Buffer[],
  boundary = "harmony-test-boundary",
): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), p, Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    body: Buffer.concat(chunks),
    contentType: `multipart/related; type="application/dicom"; boundary=${boundary}`,
  };
}

/** Splits a multipart body into its parts' payloads (headers dropped). */
export function splitMultipart(body: Buffer, contentType: string): Buffer[] {
  const b = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!b) throw new Error(`no boundary in ${contentType}`);
  const delim = Buffer.from(`--${b}`);
  const parts: Buffer[] = [];
  let i = body.indexOf(delim);
  while (i >= 0) {
    const start = i + delim.length;
    if (body.subarray(start, start + 2).toString() === "--") break;
    const headersEnd = body.indexOf("\r\n\r\n", start);
    const next = body.indexOf(delim, headersEnd);
    if (headersEnd < 0 || next < 0) break;
    parts.push(body.subarray(headersEnd + 4, next - 2));
    i = next;
  }
  return parts;
}
