/**
 * `jmix_builder`: the work behind the `jmix` endpoint's API, placed in the pipeline after any
 * authentication so that no package is served, built or accepted before it has run.
 *
 * Left: serves stored packages (zip streamed from the store as it is written) and manifests,
 * answers study requests from the index, and accepts uploads (unpacked under limits, verified in
 * full, then moved into the store: 201, or 400 with every problem, or 409). A study not in the
 * store becomes a WADO-RS request for the whole study (`GET /studies/{uid}`, multipart DICOM) to
 * the pipeline's backend: a `dicomweb` origin answers it over HTTP, a `dicom` one with C-GET or
 * C-MOVE.
 * Right: builds the package from that response one instance at a time, commits it, and serves it
 * (or answers 201 for a prime).
 */
import { mkdir, rm } from "node:fs/promises";
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Type, type Static } from "@sinclair/typebox";
import type { BuildContext, MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError } from "../pipeline/errors.js";
import { readSecret, secretProps } from "../plugins/secret.js";
import { boundaryOf, spoolParts } from "../protocols/multipart.js";
import { JMIX_LOCAL, type JmixRequest, type PackageFormat } from "../endpoints/jmix.js";
import { tarGzOf, zipOf } from "../jmix/archive.js";
import { BuildError, PackageBuilder, type BuildOptions } from "../jmix/build.js";
import { parseKey } from "../jmix/crypto.js";
import { JmixStore, StoreUnavailableError, type IndexEntry } from "../jmix/store.js";
import { FilesystemStorage } from "../jmix/storage-fs.js";
import { S3Storage, type S3Settings } from "../jmix/storage-s3.js";
import { receiveUpload, type UploadLimits } from "../jmix/upload.js";

const Party = Type.Object(
  { id: Type.String({ minLength: 1 }), name: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

const Options = Type.Object(
  {
    store_dir: Type.Optional(
      Type.String({
        description:
          "Local directory for staging and, with filesystem storage, the packages (default: <storage.options.path or ./tmp>/jmix-store).",
      }),
    ),
    storage: Type.Union([Type.Literal("filesystem"), Type.Literal("s3")], {
      default: "filesystem",
      description: "Where stored packages live: store_dir, or S3-compatible object storage (s3).",
    }),
    s3: Type.Optional(
      Type.Object(
        {
          bucket: Type.String({ minLength: 1 }),
          prefix: Type.String({ default: "", description: "Key prefix, e.g. jmix/." }),
          region: Type.String({ default: "us-east-1" }),
          endpoint: Type.Optional(Type.String({ description: "For S3-compatible services (MinIO, Ceph RGW)." })),
          force_path_style: Type.Optional(
            Type.Boolean({ description: "Bucket in the path, not the host name (default: true with an endpoint)." }),
          ),
          ...secretProps("access_key_id", "The access key id (default: the AWS SDK's credential chain)"),
          ...secretProps("secret_access_key", "The secret access key"),
        },
        { additionalProperties: false },
      ),
    ),
    skip_hashing: Type.Boolean({
      default: false,
      description: "No per-file hashes in files.json and no payload_hash (faster; no tamper evidence).",
    }),
    skip_listing: Type.Boolean({ default: false, description: "files.json lists metadata.json only." }),
    sender: Type.Object(Party.properties, {
      additionalProperties: false,
      default: { id: "org:harmony-proxy", name: "Harmony Proxy" },
    }),
    receivers: Type.Array(Party, { minItems: 1, default: [{ id: "org:unspecified" }] }),
    requester: Type.Optional(Party),
    classification: Type.Union(
      [Type.Literal("confidential"), Type.Literal("sensitive"), Type.Literal("de-identified")],
      { default: "confidential" },
    ),
    ...secretProps("signing_key", "The sender's Ed25519 private key (PKCS#8 PEM) for assertions and JWS"),
    key_reference: Type.Optional(Type.String({ description: "Where receivers can look the signing key up." })),
    jws: Type.Boolean({ default: false, description: "Write manifest.jws (needs a signing key)." }),
    ...secretProps(
      "recipient_public_key",
      "X25519 public key (PEM, or base64 of its 32 bytes) packages are encrypted to",
    ),
    ...secretProps("decryption_key", "This gateway's X25519 private key (PKCS#8 PEM) for encrypted uploads"),
    // Defaults sized for a large CT or MR study (a few thousand instances, a few GB), not beyond.
    max_upload_bytes: Type.Integer({ minimum: 1, default: 2 * 1024 ** 3, description: "Upload size (413 beyond)." }),
    max_package_bytes: Type.Integer({
      minimum: 1,
      default: 4 * 1024 ** 3,
      description: "Bytes an upload may unpack to (400 beyond).",
    }),
    max_entries: Type.Integer({ minimum: 1, default: 20_000, description: "Entries in an uploaded archive." }),
    max_compression_ratio: Type.Integer({
      minimum: 1,
      default: 100,
      description:
        "Unpacked : compressed size an upload may reach, per zip entry and in total (entries and archives under 1 MiB count as 1 MiB); DICOM rarely passes 10:1, a zip bomb passes 1000:1.",
    }),
    max_concurrent_uploads: Type.Integer({
      minimum: 1,
      default: 4,
      description: "Uploads received and unpacked at once per store; more get 503 with Retry-After.",
    }),
    max_instance_bytes: Type.Integer({ minimum: 1, default: 2 * 1024 ** 3 }),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

interface Keys {
  signing?: KeyObject;
  recipient?: KeyObject;
  decryption?: KeyObject;
}

function loadKeys(o: Options, ctx: BuildContext): { keys: Keys; problems: OptionProblem[] } {
  const problems: OptionProblem[] = [];
  const keys: Keys = {};
  const one = (name: string, crv: "Ed25519" | "X25519", kind: "private" | "public"): KeyObject | undefined => {
    const s = readSecret(o, name, ctx);
    problems.push(...s.problems);
    if (s.value === undefined) return undefined;
    try {
      return parseKey(s.value, crv, kind);
    } catch (e) {
      // The message names the key type, never the key material.
      problems.push({
        path: [name],
        message: `is not a usable ${crv} ${kind} key: ${(e as Error).message.split("\n")[0]}`,
      });
      return undefined;
    }
  };
  keys.signing = one("signing_key", "Ed25519", "private");
  keys.recipient = one("recipient_public_key", "X25519", "public");
  keys.decryption = one("decryption_key", "X25519", "private");
  if (o.jws && !keys.signing && !problems.length)
    problems.push({ path: ["jws"], message: "needs signing_key (or signing_key_file / signing_key_env)" });
  return { keys, problems };
}

function s3Settings(o: Options, ctx: BuildContext): { settings?: S3Settings; problems: OptionProblem[] } {
  if (!o.s3) return { problems: [{ path: ["s3"], message: 'is required with storage = "s3" (at least its bucket)' }] };
  const id = readSecret(o.s3, "access_key_id", ctx);
  const secret = readSecret(o.s3, "secret_access_key", ctx);
  const problems = [...id.problems, ...secret.problems].map((p) => ({ ...p, path: ["s3", ...p.path] }));
  if ((id.value === undefined) !== (secret.value === undefined))
    problems.push({ path: ["s3"], message: "give both access_key_id and secret_access_key, or neither" });
  if (o.s3.endpoint !== undefined && !/^https?:\/\//.test(o.s3.endpoint))
    problems.push({ path: ["s3", "endpoint"], message: "must be an http:// or https:// URL" });
  return {
    problems,
    settings: {
      bucket: o.s3.bucket,
      prefix: o.s3.prefix,
      region: o.s3.region,
      ...(o.s3.endpoint ? { endpoint: o.s3.endpoint } : {}),
      forcePathStyle: o.s3.force_path_style ?? o.s3.endpoint !== undefined,
      ...(id.value !== undefined ? { accessKeyId: id.value } : {}),
      ...(secret.value !== undefined ? { secretAccessKey: secret.value } : {}),
    },
  };
}

function storeDir(o: Options, ctx: BuildContext): string {
  if (o.store_dir) return ctx.resolvePath(o.store_dir);
  const storage = ctx.table("storage") as { options?: { path?: string } };
  return ctx.resolvePath(join(storage.options?.path ?? "./tmp", "jmix-store"));
}

const BUILD = "jmixBuild";

export const jmixBuilder: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "jmix_builder",
  options: Options,
  check: (o, ctx) => [...loadKeys(o, ctx).problems, ...(o.storage === "s3" ? s3Settings(o, ctx).problems : [])],
  create: (o, ctx) => {
    const { keys } = loadKeys(o, ctx);
    const dir = storeDir(o, ctx);
    const s3 = o.storage === "s3" ? s3Settings(o, ctx).settings : undefined;
    // Pipelines naming the same store share one index (and reloads keep it).
    const key = `jmix-store:${dir}:${s3 ? `s3://${s3.endpoint ?? "aws"}/${s3.bucket}/${s3.prefix}` : "fs"}`;
    const store = ctx.resources.acquire(
      key,
      () => new JmixStore(dir, s3 ? new S3Storage(s3) : new FilesystemStorage(dir, ctx.logger), ctx.logger),
    );
    const uploadLimits: UploadLimits = {
      maxUploadBytes: o.max_upload_bytes,
      maxConcurrent: o.max_concurrent_uploads,
      unpack: { maxEntries: o.max_entries, maxBytes: o.max_package_bytes, maxRatio: o.max_compression_ratio },
    };

    const apiBase = (rctx: RequestContext) => `${rctx.route.prefix === "/" ? "" : rctx.route.prefix}/api/jmix`;

    async function serveZip(rctx: RequestContext, e: IndexEntry, head: boolean, format: PackageFormat): Promise<void> {
      const files = await store.files(e.id);
      const tgz = format === "tar.gz";
      rctx.response = {
        status: 200,
        headers: {
          "content-type": tgz ? "application/gzip" : "application/zip",
          "content-disposition": `attachment; filename="${e.id}.${tgz ? "tar.gz" : "zip"}"`,
          "x-jmix-id": e.id,
          ...(e.study_uid ? { "x-jmix-study-uid": e.study_uid } : {}),
        },
        body: head ? null : (tgz ? tarGzOf : zipOf)(files, `${e.id}.jmix`),
      };
    }

    function found(id: string): IndexEntry {
      const e = store.get(id);
      if (!e) throw new HttpError(404, `no JMIX package ${id}`);
      return e;
    }

    function requestBuild(rctx: RequestContext, r: JmixRequest & { studyUid: string }): void {
      // The backend sees a WADO-RS retrieve of the whole study, whatever the client asked, with
      // instances as stored (PS3.18 §8.7.3.5.2: without `transfer-syntax` a backend may well
      // decompress to Explicit VR Little Endian); a package carries what the archive holds.
      rctx.target.method = "GET";
      rctx.target.uri = `/studies/${r.studyUid}`;
      rctx.target.query = "";
      rctx.target.headers = {
        ...rctx.target.headers,
        accept: 'multipart/related; type="application/dicom"; transfer-syntax=*',
      };
      rctx.body.replace(Buffer.alloc(0));
      rctx.locals[BUILD] = r;
    }

    async function upload(rctx: RequestContext, format: "zip" | "tar.gz"): Promise<void> {
      const body = rctx.body.forUpstream();
      if (body === null) throw new HttpError(400, "the upload is empty");
      const entry = await receiveUpload(store, body, format, uploadLimits, keys.decryption);
      ctx.logger.info("JMIX package stored", { request_id: rctx.id, id: entry.id, study_uid: entry.study_uid });
      created(rctx, entry, { status: "stored" });
    }

    function created(rctx: RequestContext, e: IndexEntry, extra: Record<string, unknown>): void {
      const body = Buffer.from(JSON.stringify({ id: e.id, studyInstanceUid: e.study_uid, ...extra }));
      rctx.response = {
        status: 201,
        headers: { "content-type": "application/json", location: `${apiBase(rctx)}/${e.id}` },
        body,
      };
    }

    async function build(rctx: RequestContext, r: JmixRequest & { studyUid: string }): Promise<IndexEntry> {
      const res = rctx.response!;
      const drain = () => {
        if (res.body instanceof Readable) res.body.resume();
      };
      if (res.status === 404 || res.status === 204) {
        drain();
        throw new HttpError(404, `study ${r.studyUid} was not found at the origin`);
      }
      const boundary = boundaryOf(String(res.headers["content-type"] ?? ""));
      if (res.status !== 200 || !boundary || res.body === null) {
        drain();
        throw new HttpError(
          502,
          `the origin answered ${res.status} (${String(res.headers["content-type"] ?? "no type")}) for study ${r.studyUid}`,
        );
      }
      const opts: BuildOptions = {
        skipHashing: "skipHashing" in r && r.skipHashing !== undefined ? r.skipHashing : o.skip_hashing,
        skipListing: "skipListing" in r && r.skipListing !== undefined ? r.skipListing : o.skip_listing,
        sender: o.sender,
        receivers: o.receivers,
        ...(o.requester ? { requester: o.requester } : {}),
        classification: o.classification,
        ...(keys.signing ? { signingKey: keys.signing } : {}),
        ...(o.key_reference ? { keyReference: o.key_reference } : {}),
        jws: o.jws,
        ...(keys.recipient ? { encryptTo: keys.recipient } : {}),
      };
      const staging = await store.staging();
      try {
        const builder = new PackageBuilder(staging, opts, r.studyUid);
        const body = Buffer.isBuffer(res.body) ? [res.body] : res.body;
        const incoming = join(staging, "incoming");
        await mkdir(incoming);
        // Instances go to disk as they arrive: memory holds a chunk, not an instance.
        for await (const part of spoolParts(body, boundary, incoming, o.max_instance_bytes, !opts.skipHashing))
          await builder.addInstance(part);
        await rm(incoming, { recursive: true });
        const study = await builder.finish();
        const e = await store.commit(staging, {
          id: builder.id,
          study_uid: study,
          origin: "built",
          encrypted: !!keys.recipient,
        });
        ctx.logger.info("JMIX package built", {
          request_id: rctx.id,
          id: e.id,
          study_uid: study,
          instances: builder.instances,
          bytes: e.bytes,
        });
        return e;
      } catch (e) {
        await store.discard(staging);
        if (e instanceof BuildError) throw new HttpError(502, `the study could not be packaged: ${e.message}`);
        throw e;
      }
    }

    return {
      async onRequest(rctx) {
        const r = rctx.locals[JMIX_LOCAL] as JmixRequest | undefined;
        if (!r) return;
        try {
          await store.ready();
        } catch (e) {
          if (e instanceof StoreUnavailableError)
            throw new HttpError(503, e.message, { headers: { "retry-after": "5" } });
          throw e;
        }
        switch (r.op) {
          case "get":
            return serveZip(rctx, found(r.id), r.head, r.format);
          case "manifest":
          case "metadata": {
            const e = found(r.id);
            const file = r.op === "manifest" ? "manifest.json" : "payload/metadata.json";
            if (r.op === "metadata" && e.encrypted)
              throw new HttpError(404, `package ${e.id} is encrypted; its metadata is inside the payload`);
            const body = await store.read(e.id, file);
            rctx.response = {
              status: 200,
              headers: { "content-type": "application/json", "content-length": body.length },
              body: r.head ? null : body,
            };
            return;
          }
          case "study": {
            const hit = store.latestForStudy(r.studyUid);
            return hit ? serveZip(rctx, hit, r.head, r.format) : requestBuild(rctx, r);
          }
          case "prime": {
            const hit = store.latestForStudy(r.studyUid);
            if (!hit) return requestBuild(rctx, r);
            rctx.response = {
              status: 200,
              headers: { "content-type": "application/json", "content-location": `${apiBase(rctx)}/${hit.id}` },
              body: Buffer.from(JSON.stringify({ id: hit.id, studyInstanceUid: hit.study_uid, status: "exists" })),
            };
            return;
          }
          case "upload":
            return upload(rctx, r.format);
        }
      },
      async onResponse(rctx) {
        const r = rctx.locals[BUILD] as (JmixRequest & { studyUid: string }) | undefined;
        if (!r || !rctx.response) return;
        const e = await build(rctx, r);
        if (r.op === "prime") created(rctx, e, { status: "built" });
        else await serveZip(rctx, e, r.op === "study" && r.head, r.op === "study" ? r.format : "zip");
      },
    };
  },
};
