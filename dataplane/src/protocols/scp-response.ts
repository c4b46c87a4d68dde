/**
 * A pipeline's answer as a DIMSE SCP reads it: the status it maps to, and its body read whole
 * (DICOM JSON is small) or drained when nobody reads it.
 */
import type { ProxyResponse } from "../pipeline/context.js";
import { constants } from "./dimse.js";

const { Status } = constants;

/** HTTP status of the pipeline's answer → DIMSE failure status (PS3.4 C.4, Harmony's mapping). */
export function dimseStatusFor(http: number): number {
  if (http >= 200 && http < 300) return Status.Success;
  if (http === 401 || http === 403) return Status.NotAuthorized;
  if (http === 413 || http === 507) return 0xa700; // out of resources
  if (http === 400 || http === 404 || http === 415 || http === 422) return 0xc000; // unable to process
  if (http === 409) return 0xa700;
  return 0xc001; // processing failure upstream (C-FIND: unable to process)
}

export async function bodyOf(res: ProxyResponse): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  if (Buffer.isBuffer(res.body)) return res.body;
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function drain(res: ProxyResponse): void {
  if (res.body && !Buffer.isBuffer(res.body)) res.body.resume();
}
