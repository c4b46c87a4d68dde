/**
 * DIMSE operations as promises over dcmjs-dimse's Client. Every operation goes on the peer's
 * association pool when it has one (dimse-pool.ts: a C-GET only on an association that proposed
 * exactly its storage contexts, see dimse-association.ts `fits`); without a pool each gets an
 * association of its own, released when the call completes.
 * A refused association, a dropped connection or a timeout becomes the HTTP error a gateway
 * should answer with (502 or 504), naming the peer by AE title only.
 */
import { HttpError, problemType } from "../pipeline/errors.js";
import { Client, Dataset, RawDataset, constants, isPending, requests, responses, type DimseDataset } from "./dimse.js";
import type { Level, SearchLevel } from "./dicomweb-request.js";
import { MAX_CONTEXTS, storageContexts } from "./transfer-syntax.js";
import "./store-proposal.js";
import type { AnyRequest, AssociationPool, ExchangeOptions, StoreHandler } from "./dimse-pool.js";
import { contextOf, signature } from "./dimse-association.js";

export { AssociationPool } from "./dimse-pool.js";

export interface Peer {
  host: string;
  port: number;
  calledAet: string;
  callingAet: string;
  connectTimeoutMs: number;
  associationTimeoutMs: number;
  /** Open associations to reuse (the `dicom` backend's); none: one association per operation. */
  pool?: AssociationPool;
}

export interface Received {
  dataset: RawDataset;
  sopClass: string;
  sopInstance: string;
  transferSyntax: string;
}

type AnyClient = InstanceType<typeof Client>;

function run(peer: Peer, client: AnyClient): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed: Error | undefined;
    client.on("associationRejected", (r: { result?: number; source?: number; reason?: number }) => {
      failed = new HttpError(502, `DICOM peer ${peer.calledAet} rejected the association (reason ${r.reason ?? "?"})`, {
        type: problemType("dimse-association-rejected"),
      });
    });
    client.on("networkError", (e: Error) => {
      const code = (e as { code?: string }).code;
      const timeout = /timeout/i.test(e.message) || code === "ETIMEDOUT";
      failed ??= new HttpError(
        timeout ? 504 : 502,
        `DICOM peer ${peer.calledAet} ${timeout ? "timed out" : "failed"} (${code ?? e.message})`,
        {
          type: problemType(timeout ? "upstream-timeout" : "upstream-error"),
          cause: e,
        },
      );
    });
    client.on("closed", () => (failed ? reject(failed) : resolve()));
    client.send(peer.host, peer.port, peer.callingAet, peer.calledAet, {
      connectTimeout: peer.connectTimeoutMs,
      associationTimeout: peer.associationTimeoutMs,
      pduTimeout: peer.associationTimeoutMs,
    });
  });
}

/** `requests` on a pooled association, or on one of their own. */
function exchange(peer: Peer, requests: AnyRequest[], opts: ExchangeOptions = {}): Promise<void> {
  if (peer.pool) return peer.pool.run(peer, requests, opts);
  const client = new Client();
  for (const r of requests) client.addRequest(r);
  for (const s of opts.extra ?? []) client.addAdditionalPresentationContext(contextOf(s), true);
  const onStore = opts.onStore;
  if (onStore)
    client.on("cStoreRequest", (sub: Parameters<StoreHandler>[0], callback: Parameters<StoreHandler>[1]) =>
      onStore(sub, callback, () => client.abort()),
    );
  return run(peer, client);
}

export async function cEcho(peer: Peer): Promise<number> {
  const req = new requests.CEchoRequest();
  let status = -1;
  req.on("response", (r: { getStatus(): number }) => (status = r.getStatus()));
  await exchange(peer, [req]);
  return status;
}

const FIND_SOP: Record<Level | "PATIENT", string> = {
  // Patient level exists only in the Patient Root model (the HTTP JSON API's identifier-driven find).
  PATIENT: "1.2.840.10008.5.1.4.1.2.1.1", // Patient Root Q/R FIND (dcmjs-dimse has no constant for it)
  STUDY: constants.SopClass.StudyRootQueryRetrieveInformationModelFind,
  SERIES: constants.SopClass.StudyRootQueryRetrieveInformationModelFind,
  IMAGE: constants.SopClass.StudyRootQueryRetrieveInformationModelFind,
};

/**
 * C-FIND: every pending match's elements (the first `maxMatches`; `truncated` says more came), and
 * the final status.
 */
export async function cFind(
  peer: Peer,
  identifier: Record<string, unknown>,
  level: SearchLevel | "PATIENT",
  maxMatches = Infinity,
): Promise<{ status: number; matches: Record<string, unknown>[]; truncated: boolean }> {
  const req = new requests.CFindRequest();
  req.setAffectedSopClassUid(
    level === "WORKLIST" ? constants.SopClass.ModalityWorklistInformationModelFind : FIND_SOP[level],
  );
  req.setDataset(new Dataset(level === "WORKLIST" ? identifier : { QueryRetrieveLevel: level, ...identifier }));
  const matches: Record<string, unknown>[] = [];
  let status = -1;
  let truncated = false;
  req.on("response", (r: { getStatus(): number; hasDataset(): boolean; getDataset(): DimseDataset }) => {
    status = r.getStatus();
    if (!isPending(status) || !r.hasDataset()) return;
    if (matches.length < maxMatches) matches.push(r.getDataset().getElements());
    else truncated = true; // memory stays bounded by the cap however many the peer sends
  });
  await exchange(peer, [req]);
  return { status, matches, truncated };
}

/** The storage SOP classes and transfer syntaxes a C-GET offers to receive instances in. */
export interface GetOffer {
  sopClasses: string[];
  transferSyntaxes: readonly string[];
}

/**
 * C-GET: `onInstance` is awaited before each C-STORE sub-operation is acknowledged, so a slow
 * consumer slows the peer down instead of filling memory. Without an `offer` (or when it does not
 * fit in one association), dcmjs-dimse's default: every storage class in Implicit and Explicit VR
 * Little Endian.
 */
export async function cGet(
  peer: Peer,
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  onInstance: (r: Received) => Promise<void>,
  offer?: GetOffer,
): Promise<{ status: number; completed: number; failed: number; warnings: number }> {
  const req =
    level === "STUDY"
      ? requests.CGetRequest.createStudyGetRequest(uids.study)
      : level === "SERIES"
        ? requests.CGetRequest.createSeriesGetRequest(uids.study, uids.series!)
        : requests.CGetRequest.createImageGetRequest(uids.study, uids.series!, uids.sop!);
  const contexts = offer && storageContexts(offer.sopClasses, offer.transferSyntaxes, MAX_CONTEXTS - 1);
  if (contexts) req.setAddStorageSopClassesToAssociation(false);
  const result = { status: -1, completed: 0, failed: 0, warnings: 0 };
  req.on(
    "response",
    (r: { getStatus(): number; getCompleted(): number; getFailures(): number; getWarnings(): number }) => {
      result.status = r.getStatus();
      result.completed = r.getCompleted() ?? result.completed;
      result.failed = r.getFailures() ?? result.failed;
      result.warnings = r.getWarnings() ?? result.warnings;
    },
  );
  let consumerError: Error | undefined;
  const onStore: StoreHandler = (sub, callback, abort) => {
    const rsp = responses.CStoreResponse.fromRequest(sub);
    const ds = sub.getDataset()!;
    const received: Received = {
      dataset: ds instanceof RawDataset ? ds : new RawDataset(ds.getDenaturalizedDataset(), ds.getTransferSyntaxUid()),
      sopClass: sub.getAffectedSopClassUid(),
      sopInstance: sub.getAffectedSopInstanceUid(),
      transferSyntax: ds.getTransferSyntaxUid(),
    };
    onInstance(received).then(
      () => {
        rsp.setStatus(constants.Status.Success);
        callback(rsp);
      },
      (e: unknown) => {
        consumerError ??= e instanceof Error ? e : new Error(String(e));
        rsp.setStatus(0xa700); // Out of resources: nobody to deliver to
        callback(rsp);
        abort(consumerError);
      },
    );
  };
  const extra = contexts?.map((c) => signature(c.sopClass, c.syntaxes));
  await exchange(peer, [req], { extra, onStore }).catch((e: unknown) => {
    throw consumerError ?? e;
  });
  if (consumerError) throw consumerError;
  return result;
}

export interface StoreItem {
  sopClass: string;
  sopInstance: string;
  transferSyntax: string;
  dataset: Buffer;
}

const TRANSFER_SYNTAX_NOT_SUPPORTED = 0xc122;
const PROCESSING_FAILURE = 0x0110;

/**
 * C-STORE of several instances on one association; the status of each, in order. What is
 * proposed for each instance is what it can be sent in (store-proposal.ts): its own syntax, and
 * for an uncompressed one every uncompressed syntax, transcoded losslessly (dimse.ts).
 * `comments`, when given, receives each response's Error Comment (0000,0902) where the peer sent
 * one: why it refused (a network policy names its rule there), for the caller to pass on.
 */
export async function cStore(peer: Peer, items: StoreItem[], comments?: (string | undefined)[]): Promise<number[]> {
  const statuses = items.map(() => -1);
  const reqs = items.map((item, i) => {
    const ds = new RawDataset(item.dataset, item.transferSyntax, {
      SOPClassUID: item.sopClass,
      SOPInstanceUID: item.sopInstance,
    }).seal();
    const req = new requests.CStoreRequest(ds);
    req.on("response", (r: { getStatus(): number; getErrorComment(): string | undefined }) => {
      statuses[i] = r.getStatus();
      const comment = r.getErrorComment()?.trim();
      if (comments && comment) comments[i] = comment;
    });
    return req;
  });
  let broken = false;
  await exchange(peer, reqs).catch((e: unknown) => {
    if (statuses.every((st) => st === -1)) throw e;
    broken = true;
  });
  // No response on an association that went well: dcmjs-dimse skipped the request, because the
  // peer accepted no context it can go in without decoding it: PS3.4's "Referenced Transfer
  // Syntax not supported". On one that broke, a processing failure. Never a negative status.
  return statuses.map((st) => (st !== -1 ? st : broken ? PROCESSING_FAILURE : TRANSFER_SYNTAX_NOT_SUPPORTED));
}

/**
 * C-MOVE to `destination`; the instances arrive on a separate association (see MoveReceiver), so
 * the request's own association is an ordinary one and may be pooled.
 */
export async function cMove(
  peer: Peer,
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  destination: string,
): Promise<{ status: number; completed: number; failed: number; warnings: number }> {
  const req =
    level === "STUDY"
      ? requests.CMoveRequest.createStudyMoveRequest(destination, uids.study)
      : level === "SERIES"
        ? requests.CMoveRequest.createSeriesMoveRequest(destination, uids.study, uids.series!)
        : requests.CMoveRequest.createImageMoveRequest(destination, uids.study, uids.series!, uids.sop!);
  const result = { status: -1, completed: 0, failed: 0, warnings: 0 };
  req.on(
    "response",
    (r: { getStatus(): number; getCompleted(): number; getFailures(): number; getWarnings(): number }) => {
      result.status = r.getStatus();
      result.completed = r.getCompleted() ?? result.completed;
      result.failed = r.getFailures() ?? result.failed;
      result.warnings = r.getWarnings() ?? result.warnings;
    },
  );
  await exchange(peer, [req]);
  return result;
}
