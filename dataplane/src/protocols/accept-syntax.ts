/**
 * Which transfer syntaxes a WADO-RS client accepts instances in (PS3.18 §8.7.3.5): the
 * `transfer-syntax` parameter of each `multipart/related; type="application/dicom"` (or
 * `application/dicom`) media range. `*` asks for instances as stored; a range without the parameter
 * means Explicit VR Little Endian, the default of §8.7.3.5.2. A request accepting nothing DICOM is
 * answered 406 by the caller.
 */
import { EXPLICIT_LE, canTranscode, isUncompressed } from "./transfer-syntax.js";

export interface WantedSyntaxes {
  /** `transfer-syntax=*`: any syntax, as the peer sends it. */
  asStored: boolean;
  /** Acceptable syntaxes, in the client's order (quality aside). */
  syntaxes: string[];
}

/** Media ranges, split at commas outside quoted strings. */
const RANGES = /(?:[^,"]|"[^"]*")+/g;
const PARAM = /;\s*([^=;\s]+)\s*=\s*("[^"]*"|[^;]*)/g;

export function wantedSyntaxes(accept: string | undefined): WantedSyntaxes | undefined {
  if (!accept?.trim()) return { asStored: false, syntaxes: [EXPLICIT_LE] };
  const out: WantedSyntaxes = { asStored: false, syntaxes: [] };
  let dicom = false;
  for (const range of accept.match(RANGES) ?? []) {
    const media = range.split(";")[0]!.trim().toLowerCase();
    const params: Record<string, string> = {};
    for (const [, k, v] of range.matchAll(PARAM)) params[k!.toLowerCase()] = v!.trim().replace(/^"|"$/g, "");
    if (params.q === "0") continue;
    const type = params.type?.toLowerCase();
    const isDicom =
      media === "*/*" ||
      media === "application/dicom" ||
      (media === "multipart/related" && (type === undefined || type === "application/dicom"));
    if (!isDicom) continue;
    dicom = true;
    const ts = params["transfer-syntax"];
    if (ts === "*") out.asStored = true;
    else if (!out.syntaxes.includes(ts ?? EXPLICIT_LE)) out.syntaxes.push(ts ?? EXPLICIT_LE);
  }
  return dicom ? out : undefined;
}

/**
 * The syntax to send an instance received in `received` in: as it is when acceptable, else the
 * first acceptable syntax it can be transcoded to losslessly; undefined when there is none.
 */
export function outputSyntax(received: string, wanted: WantedSyntaxes): string | undefined {
  if (wanted.asStored || wanted.syntaxes.includes(received)) return received;
  return wanted.syntaxes.find((t) => isUncompressed(t) && canTranscode(received, t));
}

/** Whether serving `wanted` needs the peer to send compressed syntaxes (a C-GET must propose them). */
export const wantsCompressed = (wanted: WantedSyntaxes): boolean =>
  wanted.asStored || wanted.syntaxes.some((t) => !isUncompressed(t));
