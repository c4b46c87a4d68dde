/**
 * DIMSE status classes (PS3.7 Annex C). A module of their own, without dcmjs-dimse, so that code
 * reading statuses does not load the library at start-up (protocols/dimse.ts re-exports them).
 */
export const isPending = (s: number) => s === 0xff00 || s === 0xff01;
export const isSuccess = (s: number) => s === 0x0000;
export const isWarning = (s: number) => s === 0x0001 || (s & 0xf000) === 0xb000 || s === 0x0107 || s === 0x0116;
export const hex = (s: number) => "0x" + s.toString(16).padStart(4, "0").toUpperCase();
/**
 * The HTTP response header in which a DIMSE backend passes on a peer's Error Comment (0000,0902)
 * for a failed C-STORE, which a STOW-RS response has no field for; a DIMSE endpoint relaying the
 * C-STORE sends it on in its own response.
 */
export const ERROR_COMMENT_HEADER = "x-harmony-dimse-error-comment";
