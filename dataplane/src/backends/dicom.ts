/**
 * `dicom` backend: a DIMSE peer (PACS, archive, modality) behind a DICOMweb face. It executes the
 * DICOMweb request the pipeline carries (protocols/dicomweb-request.ts) as DIMSE through
 * dcmjs-dimse: QIDO-RS → C-FIND, WADO-RS → C-GET (instances streamed out as they arrive),
 * metadata → C-GET read as DICOM JSON, STOW-RS → C-STORE (parts streamed in, stored in batches).
 * Statuses follow PS3.18: 200, 204 (no match), 202/409 (some/all stores failed), 404, 406.
 */
import { Type, type Static } from "@sinclair/typebox";
import type { BackendPlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import type { Peer } from "../protocols/dimse-client.js";
import { isSuccess } from "../protocols/dimse-status.js";
import { parseDicomwebRequest } from "../protocols/dicomweb-request.js";
import { UNCOMPRESSED } from "../protocols/transfer-syntax.js";
import { harmonyOptions, harmonyProblems, retrieval } from "./dicom-harmony.js";
import { networkPeer, peerProblems } from "./dicom-network.js";
import { jsonApi, jsonApiOp, jsonApiOptions } from "./dicom-json-api.js";
import { render, renderOp } from "./dicom-render.js";
import { bulkdata, metadata } from "./dicom-metadata.js";
import { moveReceiver, scu } from "./dicom-scu.js";
import { dimseFailure, json, publicBase } from "./dicom-reply.js";
import { asSearch, search } from "./dicom-search.js";
import { getOffer, retrieve, type Fetch } from "./dicom-retrieve.js";
import { store } from "./dicom-store.js";

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
