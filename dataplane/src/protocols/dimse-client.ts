/**
 * DIMSE operations as promises over dcmjs-dimse's Client: one association per call, released when
 * the call completes. A refused association, a dropped connection or a timeout becomes the HTTP
 * error a gateway should answer with (502 or 504), naming the peer by AE title only.
 */
import { HttpError, problemType } from "../pipeline/errors.js";
import {
  Client,
  Dataset,
  RawDataset,
  association,
  constants,
  isPending,
  requests,
  responses,
  type DimseDataset,
} from "./dimse.js";
import type { Level, SearchLevel } from "./dicomweb-request.js";

export interface Peer {
  host: string;
  port: number;
  calledAet: string;
  callingAet: string;
  connectTimeoutMs: number;
  associationTimeoutMs: number;
}

export interface Received {
  dataset: RawDataset;
  sopClass: string;
  sopInstance: string;
  transferSyntax: string;
}

type AnyClient = InstanceType<typeof Client>;

const UNCOMPRESSED: string[] = [
  constants.TransferSyntax.ImplicitVRLittleEndian,
  constants.TransferSyntax.ExplicitVRLittleEndian,
];

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

export async function cEcho(peer: Peer): Promise<number> {
  const client = new Client();
  const req = new requests.CEchoRequest();
  let status = -1;
  req.on("response", (r: { getStatus(): number }) => (status = r.getStatus()));
  client.addRequest(req);
  await run(peer, client);
  return status;
}

const FIND_SOP: Record<Level, string> = {
  STUDY: constants.SopClass.StudyRootQueryRetrieveInformationModelFind,
  SERIES: constants.SopClass.StudyRootQueryRetrieveInformationModelFind,
  IMAGE: constants.SopClass.StudyRootQueryRetrieveInformationModelFind,
};

/** C-FIND: every pending match's elements, and the final status. */
export async function cFind(
  peer: Peer,
  identifier: Record<string, unknown>,
  level: SearchLevel,
): Promise<{ status: number; matches: Record<string, unknown>[] }> {
  const client = new Client();
  const req = new requests.CFindRequest();
  req.setAffectedSopClassUid(
    level === "WORKLIST" ? constants.SopClass.ModalityWorklistInformationModelFind : FIND_SOP[level],
  );
  req.setDataset(new Dataset(level === "WORKLIST" ? identifier : { QueryRetrieveLevel: level, ...identifier }));
  const matches: Record<string, unknown>[] = [];
  let status = -1;
  req.on("response", (r: { getStatus(): number; hasDataset(): boolean; getDataset(): DimseDataset }) => {
    status = r.getStatus();
    if (isPending(status) && r.hasDataset()) matches.push(r.getDataset().getElements());
  });
  client.addRequest(req);
  await run(peer, client);
  return { status, matches };
}

/**
 * C-GET: `onInstance` is awaited before each C-STORE sub-operation is acknowledged, so a slow
 * consumer slows the peer down instead of filling memory.
 */
export async function cGet(
  peer: Peer,
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  onInstance: (r: Received) => Promise<void>,
): Promise<{ status: number; completed: number; failed: number; warnings: number }> {
  const client = new Client();
  const req =
    level === "STUDY"
      ? requests.CGetRequest.createStudyGetRequest(uids.study)
      : level === "SERIES"
        ? requests.CGetRequest.createSeriesGetRequest(uids.study, uids.series!)
        : requests.CGetRequest.createImageGetRequest(uids.study, uids.series!, uids.sop!);
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
  client.on(
    "cStoreRequest",
    (
      sub: { getDataset(): DimseDataset; getAffectedSopClassUid(): string; getAffectedSopInstanceUid(): string },
      callback: (rsp: unknown) => void,
    ) => {
      const rsp = responses.CStoreResponse.fromRequest(sub as never);
      const ds = sub.getDataset();
      const received: Received = {
        dataset:
          ds instanceof RawDataset ? ds : new RawDataset(ds.getDenaturalizedDataset(), ds.getTransferSyntaxUid()),
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
          client.abort?.();
        },
      );
    },
  );
  client.addRequest(req);
  await run(peer, client);
  if (consumerError) throw consumerError;
  return result;
}

export interface StoreItem {
  sopClass: string;
  sopInstance: string;
  transferSyntax: string;
  dataset: Buffer;
}

/** C-STORE of several instances on one association; the status of each, in order. */
export async function cStore(peer: Peer, items: StoreItem[]): Promise<number[]> {
  const client = new Client();
  const statuses = items.map(() => -1);
  const proposed = new Set<string>();
  items.forEach((item, i) => {
    const ds = new RawDataset(item.dataset, item.transferSyntax, {
      SOPClassUID: item.sopClass,
      SOPInstanceUID: item.sopInstance,
    }).seal();
    const req = new requests.CStoreRequest(ds);
    // dcmjs-dimse proposes only the uncompressed syntaxes, and would try to decode a compressed
    // instance into one; a context of its own with just its syntax lets it go as it is.
    if (!UNCOMPRESSED.includes(item.transferSyntax)) {
      const key = `${item.sopClass}|${item.transferSyntax}`;
      if (!proposed.has(key)) {
        proposed.add(key);
        client.addAdditionalPresentationContext(
          new association.PresentationContext(0, item.sopClass, item.transferSyntax),
          true,
        );
      }
    }
    req.on("response", (r: { getStatus(): number }) => (statuses[i] = r.getStatus()));
    client.addRequest(req);
  });
  await run(peer, client);
  return statuses;
}

/** C-MOVE to `destination`; the instances arrive on a separate association (see MoveReceiver). */
export async function cMove(
  peer: Peer,
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  destination: string,
): Promise<{ status: number; completed: number; failed: number; warnings: number }> {
  const client = new Client();
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
  client.addRequest(req);
  await run(peer, client);
  return result;
}
