/**
 * Builds a JMIX package in a staging directory from DICOM instances as they arrive (one instance
 * in memory at a time): payload/dicom/<SOPInstanceUID>.dcm byte for byte, then metadata.json
 * (patient, study and series from the DICOM headers), files.json, manifest.json and audit.json,
 * each checked against the specification's schema before the package may be committed.
 *
 * payload_hash rule (the one jmix-rs and jmix-js implement): SHA-256 over the files under
 * payload/, sorted by their path relative to payload/, feeding for each `path + "\n"` then its
 * bytes; written `sha256:<hex>`. For an encrypted package it is the hash of the plaintext.
 */
import { createHash, randomUUID, type KeyObject } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import dcmjs from "dcmjs";
import { tarOf } from "./archive.js";
import { checkJmix } from "./schemas.js";
import { encryptTo, makeAssertion, signJws } from "./crypto.js";
import { DICOM_UID } from "./store.js";
import { listFiles, type PackageFile } from "./local-files.js";

export interface Party {
  id: string;
  name?: string;
}

export interface BuildOptions {
  skipHashing: boolean;
  skipListing: boolean;
  sender: Party;
  receivers: Party[];
  requester?: Party;
  classification: "confidential" | "sensitive" | "de-identified";
  signingKey?: KeyObject;
  keyReference?: string;
  jws: boolean;
  encryptTo?: KeyObject;
}

interface SeriesInfo {
  series_uid: string;
  modality: string;
  body_part?: string;
  instance_count: number;
}

export class BuildError extends Error {}

type Natural = Record<string, unknown>;

const str = (v: unknown): string | undefined => {
  const x: unknown = Array.isArray(v) ? (v as unknown[])[0] : v;
  if (x === undefined || x === null) return undefined;
  // dcmjs gives person names as { Alphabetic, Ideographic, Phonetic }.
  const text = typeof x === "object" ? (x as { Alphabetic?: unknown }).Alphabetic : x;
  if (typeof text !== "string" && typeof text !== "number") return undefined;
  const s = String(text).trim();
  return s === "" ? undefined : s;
};

/** Most headers end well before this; pixel data after it is never copied to be parsed. */
const HEADER_PREFIX = 1024 * 1024;

function parseHeader(bytes: Buffer): Natural {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const dict = dcmjs.data.DicomMessage.readFile(ab, { untilTag: "7FE00010", ignoreErrors: true });
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
}

/** The attributes before the pixel data: from the file's first MiB when that holds them, else from all of it. */
async function readHeader(path: string, size: number): Promise<Natural> {
  if (size > HEADER_PREFIX) {
    const fh = await open(path, "r");
    try {
      const { buffer, bytesRead } = await fh.read(Buffer.alloc(HEADER_PREFIX), 0, HEADER_PREFIX, 0);
      const h = parseHeader(buffer.subarray(0, bytesRead));
      if (h.SOPInstanceUID && h.StudyInstanceUID && h.SeriesInstanceUID) return h;
    } catch {
      // a header longer than the prefix: read the whole instance below
    } finally {
      await fh.close();
    }
  }
  return parseHeader(await readFile(path));
}

function personName(pn: string): { family?: string; given?: string[]; prefix?: string; suffix?: string; text: string } {
  const [family, given, middle, prefix, suffix] = pn.split("=")[0]!.split("^");
  const givens = [given, middle].filter((g): g is string => !!g);
  return {
    ...(family ? { family } : {}),
    ...(givens.length ? { given: givens } : {}),
    ...(prefix ? { prefix } : {}),
    ...(suffix ? { suffix } : {}),
    text: [prefix, ...givens, family, suffix].filter(Boolean).join(" "),
  };
}

const isoDate = (da: string | undefined) =>
  da && /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : undefined;

export class PackageBuilder {
  readonly id = randomUUID();
  private readonly payload: string;
  private readonly dicomDir: string;
  private readonly listed: { file: string; hash?: string; size_bytes: number }[] = [];
  private readonly series = new Map<string, SeriesInfo>();
  private readonly seen = new Set<string>();
  private first: Natural | undefined;
  private studyUid: string | undefined;
  private ready: Promise<unknown>;

  constructor(
    readonly dir: string,
    private readonly o: BuildOptions,
    /** The study every instance must belong to, when known up front. */
    expectedStudy?: string,
  ) {
    this.payload = join(dir, "payload");
    this.dicomDir = join(this.payload, "dicom");
    this.studyUid = expectedStudy;
    this.ready = mkdir(this.dicomDir, { recursive: true });
  }

  get instances(): number {
    return this.seen.size;
  }

  get study(): string | undefined {
    return this.studyUid;
  }

  /**
   * Takes one instance, already on disk in this package's directory (spooled there as it arrived):
   * reads its header, checks it belongs to the study, and moves it to payload/dicom/<SOPInstanceUID>.dcm.
   */
  async addInstance(part: { path: string; size: number; sha256?: string }): Promise<void> {
    await this.ready;
    let h: Natural;
    try {
      h = await readHeader(part.path, part.size);
    } catch (e) {
      throw new BuildError(`an instance is not readable DICOM: ${(e as Error).message}`);
    }
    const sop = str(h.SOPInstanceUID);
    const study = str(h.StudyInstanceUID);
    const series = str(h.SeriesInstanceUID);
    if (!sop || !DICOM_UID.test(sop) || sop.length > 64)
      throw new BuildError("an instance has no valid SOPInstanceUID");
    if (!study || !series) throw new BuildError(`instance ${sop} lacks its study or series UID`);
    this.studyUid ??= study;
    if (study !== this.studyUid)
      throw new BuildError(`instance ${sop} belongs to study ${study}, not ${this.studyUid}`);
    if (this.seen.has(sop)) {
      await rm(part.path); // the same instance twice (a retried C-GET) is one file
      return;
    }
    this.seen.add(sop);
    this.first ??= h;
    const s = this.series.get(series) ?? {
      series_uid: series,
      modality: str(h.Modality) ?? "OT",
      ...(str(h.BodyPartExamined) ? { body_part: str(h.BodyPartExamined) } : {}),
      instance_count: 0,
    };
    s.instance_count++;
    this.series.set(series, s);
    const file = `dicom/${sop}.dcm`;
    await rename(part.path, join(this.payload, file));
    if (!this.o.skipListing)
      this.listed.push({
        file,
        ...(this.o.skipHashing || !part.sha256 ? {} : { hash: `sha256:${part.sha256}` }),
        size_bytes: part.size,
      });
  }

  /** Writes the JSON files (and encrypts, signs) once every instance is in. Returns the study UID. */
  async finish(): Promise<string> {
    await this.ready;
    if (!this.first || !this.studyUid) throw new BuildError("the study has no instances");
    const h = this.first;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const pn = str(h.PatientName);
    const dob = isoDate(str(h.PatientBirthDate));
    const sex = str(h.PatientSex);
    const patientId = str(h.PatientID);
    const metadata = {
      version: "1.0",
      id: this.id,
      timestamp: now,
      patient: {
        id: patientId ?? "unknown",
        ...(pn ? { name: personName(pn) } : {}),
        ...(dob ? { dob } : {}),
        ...(sex === "M" || sex === "F" || sex === "O" ? { sex } : {}),
        ...(patientId
          ? { identifiers: [{ system: str(h.IssuerOfPatientID) ?? "urn:dicom:patient-id", value: patientId }] }
          : {}),
      },
      studies: {
        ...(str(h.StudyDescription) ? { study_description: str(h.StudyDescription) } : {}),
        study_uid: this.studyUid,
        series: [...this.series.values()].sort((a, b) => a.series_uid.localeCompare(b.series_uid)),
      },
      extensions: {},
    };
    await this.writeChecked("metadata", join(this.payload, "metadata.json"), metadata);
    const metaFile = (await listFiles(this.payload)).find((f) => f.rel === "metadata.json")!;
    const files = [
      {
        file: "metadata.json",
        ...(this.o.skipHashing ? {} : { hash: await sha256File(metaFile) }),
        size_bytes: metaFile.size,
      },
      ...this.listed.sort((a, b) => a.file.localeCompare(b.file)),
    ];
    await this.writeChecked("files", join(this.payload, "files.json"), files);

    const payloadFiles = await listFiles(this.payload);
    const payloadHash = this.o.skipHashing ? undefined : await payloadHashOf(payloadFiles);
    let encryption: Record<string, string> | undefined;
    if (this.o.encryptTo) {
      const enc = encryptTo(this.o.encryptTo);
      await pipeline(tarOf(payloadFiles), enc.cipher, createWriteStream(join(this.dir, "payload.encrypted")));
      encryption = {
        algorithm: "AES-256-GCM",
        ephemeral_public_key: enc.ephemeralPublicKey.toString("base64"),
        iv: enc.iv.toString("base64"),
        auth_tag: enc.cipher.getAuthTag().toString("base64"),
      };
      await rm(this.payload, { recursive: true });
    }
    const sender: Record<string, unknown> = { ...this.o.sender };
    if (this.o.signingKey)
      sender.assertion = makeAssertion(
        sender,
        ["id", ...(sender.name ? ["name"] : []), ...(payloadHash ? ["payload_hash"] : [])],
        payloadHash,
        this.o.signingKey,
        this.o.keyReference,
      );
    const manifest = {
      version: "1.0",
      id: this.id,
      timestamp: now,
      sender,
      ...(this.o.requester ? { requester: this.o.requester } : {}),
      receiver: this.o.receivers,
      security: {
        classification: this.o.classification,
        ...(payloadHash ? { payload_hash: payloadHash } : {}),
        ...(this.o.jws && this.o.signingKey ? { jws: { jws_file: "manifest.jws" } } : {}),
        ...(encryption ? { encryption } : {}),
      },
      extensions: {},
    };
    const manifestBytes = await this.writeChecked("manifest", join(this.dir, "manifest.json"), manifest);
    if (this.o.jws && this.o.signingKey)
      await writeFile(join(this.dir, "manifest.jws"), await signJws(manifestBytes, this.o.signingKey));
    const by = { id: this.o.sender.id, ...(this.o.sender.name ? { name: this.o.sender.name } : {}) };
    await this.writeChecked("audit", join(this.dir, "audit.json"), {
      audit: [
        { event: "created", by, timestamp: now },
        ...this.o.receivers.map((to) => ({ event: "transmitted", by: this.o.requester ?? by, to, timestamp: now })),
      ],
    });
    return this.studyUid;
  }

  private async writeChecked(kind: "metadata" | "files" | "manifest" | "audit", path: string, doc: unknown) {
    const problems = checkJmix(kind, doc, `${kind}.json`);
    if (problems.length) throw new BuildError(`built ${kind}.json does not conform: ${problems.join("; ")}`);
    const bytes = Buffer.from(JSON.stringify(doc, null, 2) + "\n");
    await writeFile(path, bytes, { flag: "wx" });
    return bytes;
  }
}

export async function sha256File(f: PackageFile): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(f.abs)) h.update(c as Buffer);
  return `sha256:${h.digest("hex")}`;
}

/** The payload_hash rule above, over files listed relative to payload/ (already sorted by listFiles). */
export async function payloadHashOf(files: PackageFile[]): Promise<string> {
  const h = createHash("sha256");
  for (const f of files) {
    h.update(`${f.rel}\n`);
    for await (const c of createReadStream(f.abs)) h.update(c as Buffer);
  }
  return `sha256:${h.digest("hex")}`;
}
