/**
 * JMIX end to end: a multi-series study from pydicom's test files loaded into Orthanc → packages
 * built through the gateway (over WADO-RS and over C-GET) → every JSON file checked against the
 * specification's schemas with ajv (draft 2020-12) → the DICOM bytes compared with the originals →
 * hashes, payload_hash, the Ed25519 assertion and manifest.jws checked independently here → the
 * package uploaded to a second data plane (201, then 409), found there by study after a restart →
 * encryption to that plane's X25519 key and back → tampered and hostile archives refused with 400.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, verify } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { crc32, gzipSync } from "node:zlib";
import { connect } from "node:net";
import { once } from "node:events";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import yauzl from "yauzl";
import tarStream from "tar-stream";
import { compactVerify } from "jose";
import { startOrthanc, SAMPLES, type Orthanc } from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import {
  ROOT,
  baseConfig,
  eventually,
  startDataplane,
  tempDir,
  writeTree,
  type Dataplane,
} from "../dataplane/test/helpers.js";

const STUDY_DIR = join(SAMPLES, "dicomdirtests/98892003");
const walk = (d: string): string[] =>
  readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));
/** The 11 instances (3 series) of one MR study. */
const originals = new Map<string, Buffer>();
let STUDY = "";

let orthanc: Orthanc;
let sender: Dataplane;
let receiver: Dataplane;
let receiverConfig: string;
const receiverKeys = generateKeyPairSync("x25519");
const signing = generateKeyPairSync("ed25519");

// The schemas as the specification publishes them (vendored unmodified), compiled here, apart from the gateway's own use.
const addFormats = addFormatsModule as unknown as (a: Ajv2020) => Ajv2020;
const ajv = addFormats(new Ajv2020({ allErrors: true, strict: false }));
const schema = (k: string) =>
  ajv.compile(JSON.parse(readFileSync(join(ROOT, `dataplane/schema/jmix/${k}.schema.json`), "utf8")) as object);
const validators = {
  manifest: schema("manifest"),
  metadata: schema("metadata"),
  audit: schema("audit"),
  files: schema("files"),
};

function assertConforms(kind: keyof typeof validators, doc: unknown): void {
  const v = validators[kind];
  assert.ok(v(doc), `${kind}.json: ${JSON.stringify(v.errors)}`);
}

const pem = (k: { export(o: object): string | Buffer }) => k.export({ type: "pkcs8", format: "pem" }).toString();

function jmixPipeline(name: string, prefix: string, backend: string, builder: string): string {
  return `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_builder"]
backends = ["${backend}"]

[endpoints.${name}_in]
service = "jmix"
options = { path_prefix = "${prefix}" }

[middleware.${name}_builder]
type = "jmix_builder"
options = { ${builder} }
`;
}

before(async () => {
  for (const f of walk(STUDY_DIR)) {
    const b = readFileSync(f);
    const u = uidsOf(b);
    if (u.study === "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.1") originals.set(u.sop, b);
  }
  STUDY = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.1";
  assert.equal(originals.size, 11);
  orthanc = await startOrthanc();
  for (const b of originals.values()) {
    const r = await fetch(`${orthanc.http}/instances`, { method: "POST", body: b });
    assert.equal(r.status, 200);
  }
  const dir = writeTree({
    "keys/signing.pem": pem(signing.privateKey),
    "keys/receiver.pub.pem": receiverKeys.publicKey.export({ type: "spki", format: "pem" }).toString(),
    "config.toml": baseConfig(
      jmixPipeline(
        "web",
        "/web",
        "orthanc_web",
        `store_dir = "store", signing_key_file = "keys/signing.pem", jws = true, key_reference = "test#ed25519", receivers = [{ id = "org:receiver", name = "Receiver" }]`,
      ) +
        jmixPipeline("dimse", "/dimse", "orthanc_dimse", `store_dir = "store-dimse"`) +
        jmixPipeline(
          "sealed",
          "/sealed",
          "orthanc_web",
          `store_dir = "store-sealed", recipient_public_key_file = "keys/receiver.pub.pem"`,
        ) +
        `
[backends.orthanc_web]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }

[backends.orthanc_dimse]
service = "dicom"
options = { host = "127.0.0.1", port = ${orthanc.dicomPort}, aet = "${orthanc.aet}", local_aet = "HARMONY" }
`,
    ),
  });
  sender = await startDataplane(join(dir, "config.toml"));
  const rdir = writeTree({
    "keys/receiver.pem": pem(receiverKeys.privateKey),
    // The receiver has no origin of its own: every study it serves was uploaded to it.
    "config.toml": baseConfig(
      jmixPipeline("inbox", "/inbox", "nowhere", `store_dir = "store", decryption_key_file = "keys/receiver.pem"`) +
        `
[backends.nowhere]
service = "dicomweb"
options = { base_url = "http://127.0.0.1:9" }
`,
    ),
  });
  receiverConfig = join(rdir, "config.toml");
  receiver = await startDataplane(receiverConfig);
});

after(async () => {
  await sender?.stop();
  await receiver?.stop();
  await orthanc?.stop();
});

/** Entries of a zip, read with yauzl as any client would. */
async function unzipAll(zip: Buffer): Promise<Map<string, Buffer>> {
  const z = await new Promise<yauzl.ZipFile>((res, rej) =>
    yauzl.fromBuffer(zip, { lazyEntries: true }, (e, f) => (e ? rej(e) : res(f))),
  );
  const out = new Map<string, Buffer>();
  await new Promise<void>((resolve, reject) => {
    z.on("end", resolve);
    z.on("error", reject);
    z.on("entry", (entry: yauzl.Entry) => {
      z.openReadStream(entry, (e, s) => {
        if (e) return reject(e);
        const chunks: Buffer[] = [];
        s.on("data", (c: Buffer) => chunks.push(c));
        s.on("end", () => {
          out.set(entry.fileName, Buffer.concat(chunks));
          z.readEntry();
        });
      });
    });
    z.readEntry();
  });
  return out;
}

/** Entries below the package's top folder, keyed by their path inside the package. */
function inPackage(entries: Map<string, Buffer>, id: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of entries) {
    assert.ok(k.startsWith(`${id}.jmix/`), `entry ${k} is inside ${id}.jmix/`);
    out.set(k.slice(id.length + 6), v);
  }
  return out;
}

const json = (b: Buffer | undefined) => JSON.parse(b!.toString("utf8")) as Record<string, unknown>;

/** Rebuilds a zip (stored entries) from a map of names to bytes, with any names at all: hostile ones included. */
function makeZip(entries: [string, Buffer, { symlink?: boolean }?][]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data, opts] of entries) {
    const n = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(0x0314, 4); // made by Unix, so the mode bits below count
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(((opts?.symlink ? 0o120777 : 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, data);
    centrals.push(central, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

async function makeTarGz(entries: { name: string; data?: Buffer; type?: "file" | "symlink"; linkname?: string }[]) {
  const pack = tarStream.pack();
  for (const e of entries) pack.entry({ name: e.name, type: e.type ?? "file", linkname: e.linkname }, e.data ?? "");
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

const upload = (dp: Dataplane, prefix: string, body: Buffer, type = "application/zip") =>
  fetch(dp.url("default", `${prefix}/api/jmix`), { method: "POST", headers: { "content-type": type }, body });

let built: { id: string; zip: Buffer; files: Map<string, Buffer> };

test("a study is packaged over WADO-RS: conforming JSON, original bytes, hashes, assertion and JWS", async () => {
  const r = await fetch(sender.url("default", `/web/api/jmix?studyInstanceUid=${STUDY}`));
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal(r.headers.get("content-type"), "application/zip");
  const id = r.headers.get("x-jmix-id")!;
  assert.match(r.headers.get("content-disposition")!, new RegExp(`attachment; filename="${id}.zip"`));
  const zip = Buffer.from(await r.arrayBuffer());
  const files = inPackage(await unzipAll(zip), id);
  built = { id, zip, files };

  const manifest = json(files.get("manifest.json"));
  const metadata = json(files.get("payload/metadata.json"));
  assertConforms("manifest", manifest);
  assertConforms("metadata", metadata);
  assertConforms("audit", json(files.get("audit.json")));
  assertConforms("files", JSON.parse(files.get("payload/files.json")!.toString()));
  assert.equal(manifest.id, id);

  // Every original instance, byte for byte, and nothing else.
  const dicom = [...files.keys()].filter((k) => k.startsWith("payload/dicom/"));
  assert.equal(dicom.length, originals.size);
  for (const [sop, bytes] of originals) assert.ok(files.get(`payload/dicom/${sop}.dcm`)?.equals(bytes), sop);

  const studies = metadata.studies as { study_uid: string; series: { instance_count: number; modality: string }[] };
  assert.equal(studies.study_uid, STUDY);
  assert.equal(studies.series.length, 3);
  assert.equal(
    studies.series.reduce((n, s) => n + s.instance_count, 0),
    11,
  );
  assert.ok(studies.series.every((s) => s.modality === "MR"));
  const first = uidsOf([...originals.values()][0]!);
  assert.equal((metadata.patient as { id: string }).id, first.patientId);

  // files.json: a sha256 and size per file, as computed here.
  const listed = JSON.parse(files.get("payload/files.json")!.toString()) as {
    file: string;
    hash: string;
    size_bytes: number;
  }[];
  assert.equal(listed.length, 12);
  for (const f of listed) {
    const b = files.get(`payload/${f.file}`)!;
    assert.equal(f.size_bytes, b.length);
    assert.equal(f.hash, `sha256:${createHash("sha256").update(b).digest("hex")}`);
  }
  // payload_hash by its documented rule: sorted paths under payload/, "path\n" then bytes.
  const h = createHash("sha256");
  for (const k of [...files.keys()].filter((k) => k.startsWith("payload/")).sort()) {
    h.update(`${k.slice("payload/".length)}\n`);
    h.update(files.get(k)!);
  }
  const security = manifest.security as { payload_hash: string; jws: { jws_file: string } };
  assert.equal(security.payload_hash, `sha256:${h.digest("hex")}`);

  // The sender's Ed25519 assertion, over canonical JSON of its signed fields, with our public key.
  const s = manifest.sender as {
    id: string;
    name: string;
    assertion: { signed_fields: string[]; signature: string; signing_key: { public_key: string } };
  };
  const raw = Buffer.from(signing.publicKey.export({ format: "jwk" }).x!, "base64url");
  assert.equal(s.assertion.signing_key.public_key, raw.toString("base64"));
  assert.deepEqual(s.assertion.signed_fields, ["id", "name", "payload_hash"]);
  const signed = JSON.stringify({ id: s.id, name: s.name, payload_hash: security.payload_hash });
  assert.ok(verify(null, Buffer.from(signed), signing.publicKey, Buffer.from(s.assertion.signature, "base64")));
  const jws = await compactVerify(files.get("manifest.jws")!.toString(), signing.publicKey);
  assert.ok(Buffer.from(jws.payload).equals(files.get("manifest.json")!));
});

test("the package is served again from the store: by study, by id, its manifest; HEAD, 406, 400, 404", async () => {
  const again = await fetch(sender.url("default", `/web/api/jmix?studyInstanceUid=${STUDY}`));
  assert.equal(again.headers.get("x-jmix-id"), built.id, "the study is found in the index, not rebuilt");
  await again.arrayBuffer();
  const byId = await fetch(sender.url("default", `/web/api/jmix/${built.id}`));
  assert.equal(byId.status, 200);
  const entries = inPackage(await unzipAll(Buffer.from(await byId.arrayBuffer())), built.id);
  assert.deepEqual([...entries.keys()].sort(), [...built.files.keys()].sort());
  const manifest = await fetch(sender.url("default", `/web/api/jmix/${built.id}/manifest`));
  assert.equal(manifest.status, 200);
  assert.ok(Buffer.from(await manifest.arrayBuffer()).equals(built.files.get("manifest.json")!));
  const head = await fetch(sender.url("default", `/web/api/jmix/${built.id}`), { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-type"), "application/zip");

  const notAcceptable = await fetch(sender.url("default", `/web/api/jmix/${built.id}`), {
    headers: { accept: "text/html" },
  });
  assert.equal(notAcceptable.status, 406);
  assert.equal(notAcceptable.headers.get("content-type"), "application/problem+json");
  assert.equal((await fetch(sender.url("default", "/web/api/jmix/not-a-uuid"))).status, 400);
  assert.equal((await fetch(sender.url("default", "/web/api/jmix/00000000-0000-4000-8000-000000000000"))).status, 404);
  assert.equal((await fetch(sender.url("default", "/web/api/jmix"))).status, 400, "studyInstanceUid is required");
  assert.equal((await fetch(sender.url("default", "/web/api/jmix?studyInstanceUid=1.2.x"))).status, 400);
  assert.equal((await fetch(sender.url("default", "/web/api/jmix?studyInstanceUid=1.2.3.999"))).status, 404);
  const options = await fetch(sender.url("default", "/web/api/jmix"), { method: "OPTIONS" });
  assert.equal(options.status, 204);
  assert.equal(options.headers.get("allow"), "GET, HEAD, POST, OPTIONS");
  const del = await fetch(sender.url("default", `/web/api/jmix/${built.id}`), { method: "DELETE" });
  assert.equal(del.status, 405);
  assert.equal(del.headers.get("allow"), "GET, HEAD, OPTIONS");
  const wrongType = await upload(sender, "/web", Buffer.from("{}"), "application/json");
  assert.equal(wrongType.status, 415);
});

test("prime over DIMSE (C-GET): 201, then the package's DICOM data sets equal the originals", async () => {
  const r = await fetch(sender.url("default", `/dimse/api/jmix/prime/${STUDY}`), { method: "POST" });
  assert.equal(r.status, 201, await r.clone().text());
  const body = (await r.json()) as { id: string; studyInstanceUid: string };
  assert.equal(body.studyInstanceUid, STUDY);
  assert.equal(r.headers.get("location"), `/dimse/api/jmix/${body.id}`);
  const again = await fetch(sender.url("default", `/dimse/api/jmix/prime/${STUDY}`));
  assert.equal(again.status, 200, "primed already");
  const zip = await fetch(sender.url("default", `/dimse/api/jmix/${body.id}`));
  const files = inPackage(await unzipAll(Buffer.from(await zip.arrayBuffer())), body.id);
  assertConforms("manifest", json(files.get("manifest.json")));
  assertConforms("metadata", json(files.get("payload/metadata.json")));
  for (const [sop, bytes] of originals) {
    const got = files.get(`payload/dicom/${sop}.dcm`);
    assert.ok(got, sop);
    // C-GET carries the data set; the Part 10 meta header is the gateway's. Compare what follows it.
    assert.ok(dataset(got).equals(dataset(bytes)), `${sop}: data set differs`);
  }
});

test("prime over DIMSE keeps a JPEG instance as stored: the package carries its compressed bytes", async () => {
  const jpeg = readFileSync(join(SAMPLES, "SC_rgb_jpeg_dcmtk.dcm"));
  const u = uidsOf(jpeg);
  const put = await fetch(`${orthanc.http}/instances`, { method: "POST", body: jpeg });
  assert.equal(put.status, 200);
  const r = await fetch(sender.url("default", `/dimse/api/jmix/prime/${u.study}`), { method: "POST" });
  assert.equal(r.status, 201, await r.clone().text());
  const { id } = (await r.json()) as { id: string };
  const zip = await fetch(sender.url("default", `/dimse/api/jmix/${id}`));
  const files = inPackage(await unzipAll(Buffer.from(await zip.arrayBuffer())), id);
  const got = files.get(`payload/dicom/${u.sop}.dcm`);
  assert.ok(got, "the JPEG instance is in the package");
  assert.ok(dataset(got).equals(dataset(jpeg)), "JPEG data set bytes as stored (never transcoded)");
});

/** The data set after a Part 10 file's meta group. */
function dataset(file: Buffer): Buffer {
  const metaLength = file.readUInt32LE(132 + 8);
  return file.subarray(132 + 12 + metaLength);
}

test("upload to a second data plane: 201, 409 on the repeat, found by study after a restart", async () => {
  const r = await upload(receiver, "/inbox", built.zip);
  assert.equal(r.status, 201, await r.clone().text());
  assert.deepEqual(await r.json(), { id: built.id, studyInstanceUid: STUDY, status: "stored" });
  assert.equal(r.headers.get("location"), `/inbox/api/jmix/${built.id}`);
  const repeat = await upload(receiver, "/inbox", built.zip);
  assert.equal(repeat.status, 409);

  await receiver.stop();
  receiver = await startDataplane(receiverConfig);
  const byStudy = await fetch(receiver.url("default", `/inbox/api/jmix?studyInstanceUid=${STUDY}`));
  assert.equal(byStudy.status, 200);
  assert.equal(byStudy.headers.get("x-jmix-id"), built.id);
  const entries = inPackage(await unzipAll(Buffer.from(await byStudy.arrayBuffer())), built.id);
  assert.ok(entries.get("manifest.json")!.equals(built.files.get("manifest.json")!), "stored as received");
});

test("encryption to the receiver's X25519 key: no plaintext leaves, the receiver decrypts and verifies", async () => {
  const r = await fetch(sender.url("default", `/sealed/api/jmix?studyInstanceUid=${STUDY}`));
  assert.equal(r.status, 200, await r.clone().text());
  const id = r.headers.get("x-jmix-id")!;
  const zip = Buffer.from(await r.arrayBuffer());
  const files = inPackage(await unzipAll(zip), id);
  assert.deepEqual([...files.keys()].sort(), ["audit.json", "manifest.json", "payload.encrypted"]);
  const manifest = json(files.get("manifest.json"));
  assertConforms("manifest", manifest);
  const enc = (manifest.security as { encryption: Record<string, string> }).encryption;
  assert.equal(enc.algorithm, "AES-256-GCM");
  for (const [sop] of originals)
    assert.ok(!files.get("payload.encrypted")!.includes(Buffer.from(sop)), "no UID in clear");

  // The plane without the key refuses it; the receiver accepts it.
  const noKey = await upload(sender, "/web", zip);
  assert.equal(noKey.status, 400);
  assert.match(((await noKey.json()) as { detail: string }).detail, /no decryption key/);
  const ok = await upload(receiver, "/inbox", zip);
  assert.equal(ok.status, 201, await ok.clone().text());

  // One flipped byte of ciphertext: the tag does not verify.
  const tampered = Buffer.from(files.get("payload.encrypted")!);
  tampered[tampered.length >> 1]! ^= 0x01;
  const sealedManifest = JSON.stringify({ ...manifest, id: "0b8cfa39-0000-4000-8000-000000000001" });
  const bad = await upload(
    receiver,
    "/inbox",
    makeZip([
      ["manifest.json", Buffer.from(sealedManifest)],
      ["audit.json", files.get("audit.json")!],
      ["payload.encrypted", tampered],
    ]),
  );
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { detail: string }).detail, /does not decrypt/);
});

test("a tampered payload is refused: a changed DICOM byte, a changed manifest", async () => {
  const entries = [...built.files.entries()].map(([k, v]): [string, Buffer] => [k, Buffer.from(v)]);
  const sop = [...originals.keys()][0]!;
  const changed = entries.map(([k, v]): [string, Buffer] => {
    if (k !== `payload/dicom/${sop}.dcm`) return [k, v];
    const c = Buffer.from(v);
    c[c.length - 1]! ^= 0xff;
    return [k, c];
  });
  const r = await upload(receiver, "/inbox", makeZip(changed));
  assert.equal(r.status, 400);
  const detail = ((await r.json()) as { detail: string }).detail;
  assert.match(detail, new RegExp(`payload/dicom/${sop.replace(/\./g, "\\.")}\\.dcm does not match its hash`));

  // A manifest with a different payload_hash: the hash no longer matches and the assertion fails.
  const manifest = json(built.files.get("manifest.json"));
  const forged = {
    ...manifest,
    security: { ...(manifest.security as object), payload_hash: `sha256:${"0".repeat(64)}` },
  };
  const r2 = await upload(
    receiver,
    "/inbox",
    makeZip(entries.map(([k, v]) => [k, k === "manifest.json" ? Buffer.from(JSON.stringify(forged)) : v])),
  );
  assert.equal(r2.status, 400);
  assert.match(((await r2.json()) as { detail: string }).detail, /payload_hash does not match/);
});

test("hostile archives: zip-slip, absolute paths, links, junk, no manifest; nothing lands outside the store", async () => {
  const store = join(receiverConfig, "..", "store");
  const manifest = built.files.get("manifest.json")!;
  const cases: [string, Buffer, string, RegExp][] = [
    [
      "zip-slip",
      makeZip([
        ["manifest.json", manifest],
        ["../../evil.txt", Buffer.from("x")],
      ]),
      "application/zip",
      /climbs out|invalid relative path/,
    ],
    ["absolute", makeZip([["/tmp/harmony-evil.txt", Buffer.from("x")]]), "application/zip", /absolute path/i],
    ["backslash", makeZip([["..\\evil.txt", Buffer.from("x")]]), "application/zip", /forbidden character|invalid/],
    [
      "symlink",
      makeZip([
        ["manifest.json", manifest],
        ["payload", Buffer.from("/etc"), { symlink: true }],
      ]),
      "application/zip",
      /not a regular file/,
    ],
    ["not a zip", Buffer.from("PK nonsense"), "application/zip", /not a readable zip/],
    ["no manifest", makeZip([["readme.txt", Buffer.from("hi")]]), "application/zip", /no manifest\.json/],
    ["tar slip", await makeTarGz([{ name: "../evil.txt", data: Buffer.from("x") }]), "application/gzip", /climbs out/],
    [
      "tar symlink",
      await makeTarGz([{ name: "payload", type: "symlink", linkname: "/etc" }]),
      "application/gzip",
      /symlink/,
    ],
    ["not gzip", Buffer.from("plain text"), "application/gzip", /not a readable tar\.gz/],
    [
      "bad manifest",
      makeZip([["manifest.json", Buffer.from('{"id":"x"}')]]),
      "application/zip",
      /not a UUID|must have required/,
    ],
  ];
  for (const [name, body, type, why] of cases) {
    const r = await upload(receiver, "/inbox", body, type);
    assert.equal(r.status, 400, `${name}: ${r.status}`);
    const problem = (await r.json()) as { detail: string };
    assert.match(problem.detail, why, name);
  }
  assert.ok(!existsSync(join(store, "..", "evil.txt")) && !existsSync(join(store, "evil.txt")));
  assert.ok(!existsSync("/tmp/harmony-evil.txt"));
  assert.deepEqual(readdirSync(join(store, "staging")), [], "staging is cleaned up");
  // The plane keeps serving.
  assert.equal((await fetch(receiver.url("default", `/inbox/api/jmix/${built.id}/manifest`))).status, 200);
});

test("an upload the client abandons halfway is cleaned up, not left hanging", async () => {
  const staging = join(receiverConfig, "..", "store", "staging");
  const tgz = await makeTarGz([{ name: "manifest.json", data: Buffer.alloc(256 * 1024, 0x20) }]);
  const sock = connect(receiver.ports.default!, "127.0.0.1");
  await once(sock, "connect");
  sock.write(
    "POST /inbox/api/jmix HTTP/1.1\r\nHost: x\r\nContent-Type: application/gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
  );
  const half = tgz.subarray(0, tgz.length >> 1);
  sock.write(`${half.length.toString(16)}\r\n`);
  sock.write(half);
  sock.write("\r\n");
  await eventually("the upload to reach staging", () => readdirSync(staging).length > 0 || undefined);
  sock.destroy();
  await eventually("staging to be emptied", () => readdirSync(staging).length === 0 || undefined, {
    timeoutMs: 10_000,
  });
  assert.equal((await fetch(receiver.url("default", `/inbox/api/jmix/${built.id}/manifest`))).status, 200);
});

test("a jmix endpoint without jmix_builder in its pipeline is a config error", async () => {
  const dir = tempDir();
  writeFileSync(
    join(dir, "config.toml"),
    baseConfig(`
[pipelines.j]
networks = ["default"]
endpoints = ["j_in"]
backends = ["b"]

[endpoints.j_in]
service = "jmix"
options = { path_prefix = "/j" }

[backends.b]
service = "echo"
`),
  );
  const { runCli } = await import("../dataplane/test/helpers.js");
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1);
  assert.match(r.stdout + r.stderr, /endpoint "j_in" \(jmix\) needs a "jmix_builder" middleware/);
});
