/** How the dicom backend answers: DICOM JSON bodies, DIMSE failures as problems, its public base URL. */
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { hex } from "../protocols/dimse-status.js";

const DICOM_JSON = "application/dicom+json";

export function publicBase(rctx: RequestContext): string {
  const prefix = rctx.route.prefix === "/" ? "" : rctx.route.prefix;
  return `${rctx.secure ? "https" : "http"}://${rctx.req.headers.host ?? "localhost"}${prefix}`;
}

export function json(rctx: RequestContext, status: number, body: unknown): void {
  const buf = Buffer.from(JSON.stringify(body));
  rctx.response = {
    status,
    headers: { "content-type": DICOM_JSON, "content-length": String(buf.length), "x-request-id": rctx.id },
    body: buf,
  };
}

export function dimseFailure(what: string, status: number): HttpError {
  // 0xA900 / 0xC000-class "identifier does not match" and "unable to process" are the request's fault.
  const clientFault = status === 0xa900 || (status & 0xff00) === 0xc000;
  return new HttpError(clientFault ? 400 : 502, `${what} failed with DIMSE status ${hex(status)}`, {
    type: problemType("dimse-failure"),
  });
}
