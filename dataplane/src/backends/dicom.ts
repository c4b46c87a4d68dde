/**
 * `dicom` backend: a DIMSE peer (PACS, archive, modality) behind a DICOMweb face. It executes the
 * DICOMweb request the pipeline carries (protocols/dicomweb-request.ts) as DIMSE through
 * dcmjs-dimse: QIDO-RS → C-FIND, WADO-RS → C-GET (instances streamed out as they arrive),
 * metadata → C-GET read as DICOM JSON, STOW-RS → C-STORE (parts streamed in, stored in batches).
 * Statuses follow PS3.18: 200, 204 (no match), 202/409 (some/all stores failed), 404, 406.
 */
import { PassThrough } from "node:stream";
import { Type, type Static } from "@sinclair/typebox";
import dcmjs from "dcmjs";
import type { BackendPlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import type { GetOffer, Peer, Received, StoreItem } from "../protocols/dimse-client.js";
import { lazyModule } from "../lazy-module.js";
import { harmonyOptions, harmonyProblems, retrieval } from "./dicom-harmony.js";
import { networkPeer, peerProblems } from "./dicom-network.js";
import { jsonApi, jsonApiOp, jsonApiOptions } from "./dicom-json-api.js";
import { render, renderOp } from "./dicom-render.js";
import { bulkdata, metadata } from "./dicom-metadata.js";
import type { Level } from "../protocols/dicomweb-request.js";

/** Retrieves instances (C-GET, or C-MOVE to our receiver), handing each over as it arrives. */
type Fetch = (
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  onInstance: (r: Received) => Promise<void>,
  offer?: GetOffer,
) => Promise<{ status: number; completed: number; failed: number; warnings: number }>;
import { ERROR_COMMENT_HEADER, isSuccess, isWarning, hex } from "../protocols/dimse-status.js";
import {
  DEFAULT_KEYS,
  parseDicomwebRequest,
  type RetrieveOp,
  type SearchOp,
  type StoreOp,
} from "../protocols/dicomweb-request.js";
import { first, toDicomJson, type DicomJsonDataset } from "../protocols/dicom-json.js";
import { MultipartWriter, boundaryOf, readParts } from "../protocols/multipart.js";
import { Part10Error, parsePart10, toPart10 } from "../protocols/part10.js";
import { outputSyntax, wantedSyntaxes, wantsCompressed, type WantedSyntaxes } from "../protocols/accept-syntax.js";
import { COMPRESSED, UNCOMPRESSED } from "../protocols/transfer-syntax.js";

// dcmjs-dimse is about 11 MiB of heap (bench/README.md, issue 18): the DIMSE client loads with the
// first dicom backend built, not when the data plane starts.
const scu = lazyModule<typeof import("../protocols/dimse-client.js")>("../protocols/dimse-client.js", import.meta.url);
const moveReceiver = lazyModule<typeof import("../protocols/move-receiver.js")>(
  "../protocols/move-receiver.js",
  import.meta.url,
);

const AE = { minLength: 1, maxLength: 16, pattern: "^[\\x20-\\x5b\\x5d-\\x7e]*[^ ][\\x20-\\x5b\\x5d-\\x7e]*$" };

const Options = Type.Object(
  {
    host: Type.Optional(Type.String({ minLength: 1, description: "The DIMSE peer's host (required without target)." })),
    port: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 65535, description: "The DIMSE peer's port (required without target)." }),
    ),
    aet: Type.Optional(
      Type.String({ ...AE, description: "The peer's AE title (called AE; required without target)." }),
    ),
    target: Type.Optional(
      Type.String({
        pattern: "^harmony://",
        description:
          "harmony://<domain>/<org>/<endpoint> of a dicom endpoint: host, port and called AE come from the network's directory, and the association runs over mutual TLS to the peer gateway (its SPIFFE identity checked).",
      }),
    ),
    local_aet: Type.String({ ...AE, default: "HARMONY", description: "Our AE title (calling AE)." }),
    connect_timeout_ms: Type.Integer({ minimum: 1, default: 5000 }),
    association_timeout_ms: Type.Integer({
      minimum: 1,
      default: 60000,
      description: "Idle limit within an association.",
    }),
    max_instance_bytes: Type.Integer({
      minimum: 1024,
      default: 1024 * 1024 * 1024,
      description: "Largest single instance accepted from a STOW-RS upload.",
    }),
    retrieve: Type.Union([Type.Literal("get"), Type.Literal("move")], {
      default: "get",
      description: "Retrieve with C-GET, or with C-MOVE to our own receiver (for peers without C-GET).",
    }),
    move_aet: Type.Optional(
      Type.String({ ...AE, description: "Move destination AE title the peer knows us by (default local_aet)." }),
    ),
    move_port: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 65535, description: "Port our C-MOVE receiver listens on." }),
    ),
    move_bind_address: Type.String({ default: "0.0.0.0", description: "Address of the C-MOVE receiver." }),
    store_batch_bytes: Type.Integer({
      minimum: 1,
      default: 64 * 1024 * 1024,
      description: "STOW-RS instances are sent in associations of about this many bytes.",
    }),
    max_associations: Type.Integer({
      minimum: 0,
      maximum: 64,
      default: 4,
      description:
        "Associations to the peer kept open and reused by every operation, C-ECHO, C-FIND, C-STORE, C-GET and C-MOVE (one operation at a time on each; a C-GET only on an association that proposed exactly its storage contexts); requests beyond wait for a free one. A peer that rejects an association while others are open is taken to be at its limit, and requests wait rather than fail. 0: one association per operation, released at once.",
    }),
    idle_timeout_ms: Type.Integer({
      minimum: 1,
      default: 30000,
      description:
        "A pooled association unused this long is released (A-RELEASE); at most half of association_timeout_ms.",
    }),
    max_queued_requests: Type.Integer({
      minimum: 0,
      default: 256,
      description: "Requests waiting for a pooled association at most; beyond, 503 at once.",
    }),
    queue_timeout_ms: Type.Integer({
      minimum: 1,
      default: 30000,
      description: "How long a request waits for a pooled association before a 503.",
    }),
    ...harmonyOptions,
    ...jsonApiOptions,
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

const DICOM_JSON = "application/dicom+json";
/** PS3.7: the C-STORE failure a STOW response reports for an instance we could not even read. */
const CANNOT_UNDERSTAND = 0xc000;

export const dicomBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "dicom",
  aliases: ["dicom_scu", "dimse"],
  options: Options,
  check: (o, ctx) => [
    ...peerProblems(o, ctx),
    // C-MOVE makes the peer connect back to our receiver: across a network that is another
    // association in the other direction, which the network's listeners do not carry.
    ...(o.target !== undefined && retrieval(o).retrieve === "move"
      ? [{ path: ["retrieve"], message: 'a harmony:// target retrieves with C-GET; use retrieve = "get"' }]
      : []),
    ...(retrieval(o).retrieve === "move" && retrieval(o).movePort === undefined
      ? [{ path: ["move_port"], message: 'is required with retrieve = "move" (where the peer sends what we ask for)' }]
      : []),
    ...harmonyProblems(o),
  ],
  create: (o, ctx) => {
    const { cGet, cMove, AssociationPool } = scu();
    const { retrieve: mode, movePort } = retrieval(o);
    const viaNetwork = networkPeer(o, ctx);
    if (viaNetwork && !viaNetwork.ok) {
      const error = viaNetwork.error;
      return { handle: () => Promise.reject(new HttpError(502, error, { type: problemType("network-target") })) };
    }
    const peer: Peer = {
      host: o.host ?? "",
      port: o.port ?? 0,
      calledAet: o.aet ?? "",
      callingAet: o.local_aet,
      connectTimeoutMs: o.connect_timeout_ms,
      associationTimeoutMs: o.association_timeout_ms,
      ...(viaNetwork?.peer ?? {}),
    };
    // One pool per peer, calling AE, TLS identity (the bridge's key) and settings, shared by the
    // generations that keep them: a reload that changes any of them drains the old pool.
    if (o.max_associations > 0)
      peer.pool = ctx.resources.acquire(
        "dimse-pool:" +
          JSON.stringify([
            peer.host,
            peer.port,
            peer.calledAet,
            peer.callingAet,
            viaNetwork?.key,
            peer.connectTimeoutMs,
            peer.associationTimeoutMs,
            o.max_associations,
            o.idle_timeout_ms,
            o.max_queued_requests,
            o.queue_timeout_ms,
          ]),
        () =>
          new AssociationPool({
            maxAssociations: o.max_associations,
            // The library aborts an association that has seen no PDU for association_timeout_ms
            // (which a [targets.*] timeout_secs may set low): an idle one is released well before.
            idleTimeoutMs: Math.max(1, Math.min(o.idle_timeout_ms, Math.floor(o.association_timeout_ms / 2))),
            maxQueued: o.max_queued_requests,
            queueTimeoutMs: o.queue_timeout_ms,
          }),
      );
    const bridge = viaNetwork?.bridge;
    const receiver =
      mode === "move"
        ? ctx.resources.acquire(
            `dimse-move-receiver:${o.move_bind_address}:${movePort}`,
            () =>
              new (moveReceiver().MoveReceiver)(o.move_bind_address, movePort!, o.move_aet ?? o.local_aet, ctx.logger),
          )
        : undefined;
    const fetch: Fetch = receiver
      ? (level, uids, onInstance) => receiver.exclusive(onInstance, () => cMove(peer, level, uids, receiver.aet))
      : (level, uids, onInstance, offer) => cGet(peer, level, uids, onInstance, offer);
    return {
      async handle(rctx) {
        // A harmony:// target: the DIMSE client calls the loopback end of the TLS bridge.
        if (bridge) peer.port = await bridge.localPort();
        const method = rctx.target.method ?? rctx.method;
        if (method === "OPTIONS") return echo(rctx, peer);
        const resource = rctx.resource;
        const base = publicBase(rctx);
        const api = jsonApiOp(resource.path);
        if (api) return jsonApi(rctx, api, peer, fetch, base, o);
        const frames = method === "GET" || method === "HEAD" ? renderOp(resource.path) : undefined;
        if (frames) {
          // Offered in uncompressed syntaxes only, for the instance's own SOP class (the default
          // offer lacks some, RT Dose among them): a peer that can decompress does it for us.
          const uids = { study: frames.study, series: frames.series, sop: frames.sop };
          const offer = await getOffer(
            peer,
            { kind: "retrieve", level: "IMAGE", metadata: false, ...uids },
            {
              asStored: false,
              syntaxes: [...UNCOMPRESSED],
            },
          );
          return render(rctx, (level, u, on) => fetch(level, u, on, offer), frames);
        }
        let op = parseDicomwebRequest(method, resource.path, resource.search);
        if (op.kind === "retrieve") op = asSearch(op, rctx.header("accept"), resource.search) ?? op;
        if (op.kind === "search") return search(rctx, peer, op, base);
        if (op.kind === "retrieve")
          return op.bulkdata
            ? bulkdata(rctx, fetch, { ...op, bulkdata: op.bulkdata })
            : op.metadata
              ? metadata(rctx, fetch, op, base, (st) => dimseFailure("C-GET", st), json)
              : retrieve(rctx, fetch, op, ctx.logger, peer);
        return store(rctx, peer, op, o, base);
      },
    };
  },
};

/**
 * OPTIONS reaches a backend only from inside the gateway (the HTTP endpoint answers browsers'
 * itself): the `dicom` endpoint sends one for a C-ECHO with `echo = "upstream"`. It is a C-ECHO.
 */
async function echo(rctx: RequestContext, peer: Peer): Promise<void> {
  const status = await scu().cEcho(peer);
  if (!isSuccess(status)) throw dimseFailure("C-ECHO", status);
  rctx.response = { status: 204, headers: { allow: "GET, HEAD, POST, OPTIONS", "x-request-id": rctx.id }, body: null };
}

/**
 * A study, series or instance asked for as DICOM JSON (`Accept: application/dicom+json`, nothing
 * DICOM) is answered as the QIDO search for it, as Harmony did: its attributes, not a 406.
 */
function asSearch(op: RetrieveOp, accept: string | undefined, search: string): SearchOp | undefined {
  if (op.metadata || op.bulkdata || !accept || wantedSyntaxes(accept)) return undefined;
  if (!/application\/(dicom\+)?json/i.test(accept)) return undefined;
  const path =
    op.level === "STUDY"
      ? "/studies"
      : op.level === "SERIES"
        ? `/studies/${op.study}/series`
        : `/studies/${op.study}/series/${op.series}/instances`;
  const q = parseDicomwebRequest("GET", path, search);
  if (q.kind !== "search") return undefined;
  q.match.StudyInstanceUID = op.study;
  if (op.series) q.match.SeriesInstanceUID = op.series;
  if (op.sop) q.match.SOPInstanceUID = op.sop;
  return q;
}

function publicBase(rctx: RequestContext): string {
  const prefix = rctx.route.prefix === "/" ? "" : rctx.route.prefix;
  return `${rctx.secure ? "https" : "http"}://${rctx.req.headers.host ?? "localhost"}${prefix}`;
}

function json(rctx: RequestContext, status: number, body: unknown): void {
  const buf = Buffer.from(JSON.stringify(body));
  rctx.response = {
    status,
    headers: { "content-type": DICOM_JSON, "content-length": String(buf.length), "x-request-id": rctx.id },
    body: buf,
  };
}

function dimseFailure(what: string, status: number): HttpError {
  // 0xA900 / 0xC000-class "identifier does not match" and "unable to process" are the request's fault.
  const clientFault = status === 0xa900 || (status & 0xff00) === 0xc000;
  return new HttpError(clientFault ? 400 : 502, `${what} failed with DIMSE status ${hex(status)}`, {
    type: problemType("dimse-failure"),
  });
}

async function search(rctx: RequestContext, peer: Peer, op: SearchOp, base: string): Promise<void> {
  const keys =
    op.includefield === "all"
      ? op.level === "WORKLIST"
        ? DEFAULT_KEYS.WORKLIST
        : [...DEFAULT_KEYS.STUDY, ...DEFAULT_KEYS.SERIES, ...DEFAULT_KEYS.IMAGE]
      : [...DEFAULT_KEYS[op.level], ...op.includefield];
  const identifier: Record<string, unknown> = {};
  const uidKeys =
    op.level === "WORKLIST" ? [] : ["StudyInstanceUID", ...(op.level !== "STUDY" ? ["SeriesInstanceUID"] : [])];
  for (const k of [...keys, ...uidKeys]) setPath(identifier, k, "");
  for (const [k, v] of Object.entries(op.match)) setPath(identifier, k, v);
  const { status, matches } = await scu().cFind(peer, identifier, op.level);
  if (!isSuccess(status)) throw dimseFailure("C-FIND", status);
  const page = matches.slice(op.offset, op.limit === undefined ? undefined : op.offset + op.limit);
  if (page.length === 0) {
    rctx.response = { status: 204, headers: { "x-request-id": rctx.id }, body: null };
    return;
  }
  const out = page.map((m) => {
    const ds = toDicomJson(m);
    delete ds["00080052"]; // QueryRetrieveLevel is DIMSE plumbing, not a result
    delete ds["00080005"]; // DICOM JSON is UTF-8 whatever the archive's character set (PS3.18 F.2)
    const study = first(ds, "0020000D");
    const series = first(ds, "0020000E");
    const sop = first(ds, "00080018");
    if (op.level === "WORKLIST") return ds;
    const url =
      op.level === "STUDY"
        ? `${base}/studies/${study}`
        : op.level === "SERIES"
          ? `${base}/studies/${study}/series/${series}`
          : `${base}/studies/${study}/series/${series}/instances/${sop}`;
    if (study && (op.level === "STUDY" || series) && (op.level !== "IMAGE" || sop))
      ds["00081190"] = { vr: "UR", Value: [url] };
    return ds;
  });
  json(rctx, 200, out);
}

/** Sets `a.b` as a sequence with one item: `{a: [{b: value}]}` (C-FIND identifiers nest this way). */
function setPath(target: Record<string, unknown>, path: string, value: string): void {
  const [head, ...rest] = path.split(".");
  if (rest.length === 0) {
    target[head!] = value;
    return;
  }
  const items = Array.isArray(target[head!]) ? (target[head!] as Record<string, unknown>[]) : [{}];
  target[head!] = items;
  setPath(items[0]!, rest.join("."), value);
}

/**
 * WADO-RS answers are held up to this many bytes before the status line goes out, so a retrieve
 * whose sub-operations partly fail can still say so (206 and a Warning, PS3.18 §10.4.1). Past it
 * the answer streams (200) with backpressure to the peer, and a failure after that point ends the
 * multipart body without its closing boundary, so that no client takes it for complete.
 */
const HOLD_BYTES = 32 * 1024 * 1024;

async function retrieve(
  rctx: RequestContext,
  fetch: Fetch,
  op: RetrieveOp,
  logger: { warn: (m: string, meta: object) => void },
  peer: Peer,
): Promise<void> {
  const accept = rctx.header("accept");
  const wanted = wantedSyntaxes(accept);
  if (!wanted) {
    throw new HttpError(406, `this origin returns multipart/related; type="application/dicom", not ${accept}`, {
      title: "Not Acceptable",
    });
  }
  const offer = wantsCompressed(wanted) ? await getOffer(peer, op, wanted) : undefined;
  const writer = new MultipartWriter("application/dicom");
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  let held: Buffer[] = [];
  let heldBytes = 0;
  let streaming = false;
  let overflow: (() => void) | undefined;
  const overflowed = new Promise<void>((r) => (overflow = r));
  let delivered = 0;
  let undeliverable = 0;
  const write = async (chunks: Buffer[]) => {
    if (!streaming) {
      held.push(...chunks);
      heldBytes += chunks.reduce((n, c) => n + c.length, 0);
      if (heldBytes < HOLD_BYTES) return;
      streaming = true;
      chunks = held;
      held = [];
      overflow?.();
    }
    for (const c of chunks) if (!body.write(c)) await new Promise<void>((r) => body.once("drain", r));
  };
  const done = fetch(
    op.level,
    op,
    async (r) => {
      const ts = outputSyntax(r.transferSyntax, wanted);
      if (!ts) {
        undeliverable++; // compressed, and the client did not accept that syntax: never decoded here
        return;
      }
      const dataset = ts === r.transferSyntax ? r.dataset.bytes : r.dataset.transcodedTo(ts)?.bytes;
      delivered++;
      await write(
        writer.part(
          toPart10(
            { ...r, transferSyntax: ts, dataset: dataset ?? r.dataset.getDenaturalizedDataset() },
            peer.calledAet,
          ),
        ),
      );
    },
    offer,
  );
  const outcome = await Promise.race([overflowed.then(() => undefined), done]);
  const headers = { "content-type": writer.contentType, "x-request-id": rctx.id };
  if (outcome) {
    const missing = outcome.failed + undeliverable;
    if (delivered === 0) {
      if (outcome.completed === 0 && outcome.failed === 0) throw new HttpError(404, "no instance matches");
      if (outcome.failed === 0)
        throw new HttpError(406, "no matching instance is available in an accepted transfer syntax", {
          title: "Not Acceptable",
        });
      throw dimseFailure("C-GET", outcome.status);
    }
    const partial = missing > 0;
    if (partial)
      logger.warn("WADO-RS retrieve is partial", {
        request_id: rctx.id,
        delivered,
        failed: outcome.failed,
        undeliverable,
      });
    rctx.response = {
      status: partial ? 206 : 200,
      headers: partial
        ? {
            ...headers,
            warning: `299 harmony "${missing} of ${delivered + missing} instances could not be retrieved${undeliverable ? ` (${undeliverable} not in an accepted transfer syntax)` : ""}"`,
          }
        : headers,
      body: Buffer.concat([...held, writer.end()]),
    };
    return;
  }
  rctx.response = { status: 200, headers, body };
  done.then(
    async (r) => {
      if (r.failed + undeliverable > 0) {
        logger.warn("WADO-RS retrieve failed part-way; the answer is cut short", {
          request_id: rctx.id,
          failed: r.failed,
          undeliverable,
          delivered,
        });
        body.destroy(new Error("retrieve incomplete"));
        return;
      }
      await write([writer.end()]);
      body.end();
    },
    (e: unknown) => body.destroy(e instanceof Error ? e : new Error(String(e))),
  );
}

/**
 * What a C-GET should offer to receive: the SOP classes in scope (asked with a C-FIND, since the
 * contexts are fixed before the first instance arrives), each in every syntax the client takes.
 * Undefined (dcmjs-dimse's default offer) when the C-FIND fails.
 */
async function getOffer(peer: Peer, op: RetrieveOp, wanted: WantedSyntaxes): Promise<GetOffer | undefined> {
  const identifier: Record<string, unknown> = { StudyInstanceUID: op.study, SOPClassUID: "" };
  if (op.series) identifier.SeriesInstanceUID = op.series;
  if (op.sop) identifier.SOPInstanceUID = op.sop;
  const found = await scu()
    .cFind(peer, identifier, "IMAGE")
    .catch(() => undefined);
  if (!found || !isSuccess(found.status)) return undefined;
  const sopClasses = [
    ...new Set(found.matches.map((m) => m.SOPClassUID).filter((v): v is string => typeof v === "string")),
  ];
  if (sopClasses.length === 0) return undefined;
  return {
    sopClasses,
    transferSyntaxes: wanted.asStored ? [...UNCOMPRESSED, ...COMPRESSED] : [...wanted.syntaxes, ...UNCOMPRESSED],
  };
}

interface StoreOutcome {
  sopClass: string;
  sopInstance: string;
  status: number;
  study?: string;
  /** The peer's Error Comment on a failure (a network policy names its rule there). */
  comment?: string;
}

async function store(rctx: RequestContext, peer: Peer, op: StoreOp, o: Options, base: string): Promise<void> {
  const ct = rctx.req.headers["content-type"] ?? "";
  const boundary = boundaryOf(ct);
  if (!/^multipart\/related\b/i.test(ct) || !boundary)
    throw new HttpError(415, "STOW-RS to a DIMSE peer takes multipart/related with a boundary");
  const body = rctx.body.forUpstream();
  if (!body) throw new HttpError(400, "STOW-RS request has no body");
  const parts: AsyncIterable<Buffer> | Iterable<Buffer> = Buffer.isBuffer(body) ? [body] : body;

  const outcomes: StoreOutcome[] = [];
  let batch: (StoreItem & { study?: string })[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const comments: (string | undefined)[] = [];
    const statuses = await scu().cStore(peer, batch, comments);
    batch.forEach((b, i) =>
      outcomes.push({
        sopClass: b.sopClass,
        sopInstance: b.sopInstance,
        status: statuses[i]!,
        study: b.study,
        ...(comments[i] ? { comment: comments[i] } : {}),
      }),
    );
    batch = [];
    batchBytes = 0;
  };
  for await (const part of readParts(parts, boundary, o.max_instance_bytes)) {
    let p10;
    let study: string | undefined;
    try {
      p10 = parsePart10(part.body);
      study = studyOf(part.body);
    } catch (e) {
      if (!(e instanceof Part10Error)) throw e;
      outcomes.push({ sopClass: "", sopInstance: "", status: CANNOT_UNDERSTAND });
      continue;
    }
    if (op.study && study !== op.study) {
      // PS3.18 10.5.3: instances of another study than the one in the URL are refused.
      outcomes.push({ sopClass: p10.sopClass, sopInstance: p10.sopInstance, status: 0xa900, study });
      continue;
    }
    batch.push({ ...p10, study });
    batchBytes += p10.dataset.length;
    if (batchBytes >= o.store_batch_bytes) await flush();
  }
  await flush();

  const ok = outcomes.filter((x) => isSuccess(x.status) || isWarning(x.status));
  const failed = outcomes.filter((x) => !(isSuccess(x.status) || isWarning(x.status)));
  const studies = [...new Set(ok.map((x) => x.study).filter(Boolean))];
  const res: DicomJsonDataset = {};
  if (studies.length === 1) res["00081190"] = { vr: "UR", Value: [`${base}/studies/${studies[0]}`] };
  const ref = (x: StoreOutcome) => ({
    "00081150": { vr: "UI", Value: [x.sopClass] },
    "00081155": { vr: "UI", Value: [x.sopInstance] },
  });
  if (ok.length)
    res["00081199"] = {
      vr: "SQ",
      Value: ok.map((x) => ({
        ...ref(x),
        "00081190": { vr: "UR", Value: [`${base}/studies/${x.study}/instances/${x.sopInstance}`] },
        // Stored with a warning (coerced, elements discarded, ...): WarningReason, PS3.18 §10.5.3.
        ...(isWarning(x.status) ? { "00081196": { vr: "US", Value: [x.status] } } : {}),
      })),
    };
  if (failed.length)
    res["00081198"] = {
      vr: "SQ",
      Value: failed.map((x) => ({ ...ref(x), "00081197": { vr: "US", Value: [x.status] } })),
    };
  if (outcomes.length === 0) throw new HttpError(400, "STOW-RS request carried no instance");
  const warned = ok.some((x) => isWarning(x.status));
  json(rctx, failed.length === 0 && !warned ? 200 : ok.length === 0 ? 409 : 202, res);
  // A STOW response has no place for the peer's Error Comment: the first one goes in a header, so
  // a DIMSE endpoint relaying a C-STORE passes it on (dimse-scp.ts) and an HTTP client reads why.
  const comment = failed.find((x) => x.comment)?.comment;
  if (comment) rctx.response!.headers[ERROR_COMMENT_HEADER] = headerSafe(comment);
}

/** Printable ASCII only (the peer chose it; a header takes nothing else), at most LO's 64 characters. */
const headerSafe = (s: string) => s.replace(/[^\x20-\x7e]/g, "?").slice(0, 64);

/** StudyInstanceUID of a Part 10 file, read without parsing past it. */
function studyOf(file: Buffer): string | undefined {
  const ab = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
  const { dict } = dcmjs.data.DicomMessage.readFile(ab as ArrayBuffer, { untilTag: "0020000E" });
  const v = dict["0020000D"]?.Value?.[0];
  return typeof v === "string" ? v : undefined;
}
