/**
 * `storage_dir` of a `dicom` endpoint: each instance a C-STORE brings is kept on disk as
 * {storage_dir}/{StudyInstanceUID}/{SOPInstanceUID}.dcm (Part 10), before it is relayed.
 *
 * The UIDs become path segments, so only plain UIDs are taken (digits in dot-separated
 * components, at most 64 characters): anything else could climb out of the directory and is
 * refused. (dcmjs drops non-UID characters as it reads a UI value, so "../x" arrives as "..",
 * and "1.2.x" as "1.2."; both fail the check.) The file is
 * written under a temporary name, flushed, and renamed, so a reader never sees half an instance
 * and a crash leaves no truncated .dcm behind.
 */
import { randomUUID } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import dcmjs from "dcmjs";

/** PS3.5 9.1: numeric components joined by single dots, at most 64 characters. */
const PLAIN_UID = /^[0-9]+(\.[0-9]+)*$/;
const plain = (uid: string | undefined): uid is string => !!uid && uid.length <= 64 && PLAIN_UID.test(uid);

/** PS3.4 B.2.3: "Cannot understand" and "Out of resources". */
const CANNOT_UNDERSTAND = 0xc000;
const OUT_OF_RESOURCES = 0xa700;

/** The data set's StudyInstanceUID, read from the header only (pixel data is not parsed). */
function studyOf(file: Buffer): string | undefined {
  try {
    const ab = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer;
    const { dict } = dcmjs.data.DicomMessage.readFile(ab, { untilTag: "7FE00010" });
    const v = (dict["0020000D"] as { Value?: unknown[] } | undefined)?.Value?.[0];
    return typeof v === "string" ? v.replace(/\0+$/, "").trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes one Part 10 instance; undefined when it is on disk, else the C-STORE status to answer
 * and why (the reason names no patient data, only what was wrong).
 */
export async function keepInstance(
  dir: string,
  file: Buffer,
  sopInstance: string,
): Promise<{ status: number; reason: string } | undefined> {
  const sop = sopInstance.replace(/\0+$/, "").trim();
  const study = studyOf(file);
  if (!plain(sop)) return { status: CANNOT_UNDERSTAND, reason: "SOPInstanceUID is not a plain UID" };
  if (!plain(study)) return { status: CANNOT_UNDERSTAND, reason: "StudyInstanceUID missing or not a plain UID" };
  const folder = join(dir, study);
  const final = join(folder, `${sop}.dcm`);
  const temp = join(folder, `.${sop}.${randomUUID()}.part`);
  try {
    await mkdir(folder, { recursive: true });
    const fh = await open(temp, "wx");
    try {
      await fh.writeFile(file);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, final);
    return undefined;
  } catch (e) {
    await rm(temp, { force: true }).catch(() => undefined);
    return { status: OUT_OF_RESOURCES, reason: (e as NodeJS.ErrnoException).code ?? "write failed" };
  }
}
