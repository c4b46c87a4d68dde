/** WADO-RS as C-GET (or C-MOVE): instances streamed out as multipart as they arrive. */
import { PassThrough } from "node:stream";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError } from "../pipeline/errors.js";
import type { GetOffer, Peer, Received } from "../protocols/dimse-client.js";
import { isSuccess } from "../protocols/dimse-status.js";
import type { Level, RetrieveOp } from "../protocols/dicomweb-request.js";
import { MultipartWriter } from "../protocols/multipart.js";
import { toPart10 } from "../protocols/part10.js";
import { outputSyntax, wantedSyntaxes, wantsCompressed, type WantedSyntaxes } from "../protocols/accept-syntax.js";
import { COMPRESSED, UNCOMPRESSED } from "../protocols/transfer-syntax.js";
import { scu } from "./dicom-scu.js";
import { dimseFailure } from "./dicom-reply.js";

/** Retrieves instances (C-GET, or C-MOVE to our receiver), handing each over as it arrives. */
export type Fetch = (
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  onInstance: (r: Received) => Promise<void>,
  offer?: GetOffer,
) => Promise<{ status: number; completed: number; failed: number; warnings: number }>;

/**
 * WADO-RS answers are held up to this many bytes before the status line goes out, so a retrieve
 * whose sub-operations partly fail can still say so (206 and a Warning, PS3.18 §10.4.1). Past it
 * the answer streams (200) with backpressure to the peer, and a failure after that point ends the
 * multipart body without its closing boundary, so that no client takes it for complete.
 */
const HOLD_BYTES = 32 * 1024 * 1024;

export async function retrieve(
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
export async function getOffer(peer: Peer, op: RetrieveOp, wanted: WantedSyntaxes): Promise<GetOffer | undefined> {
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
