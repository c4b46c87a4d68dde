/** Request ids and W3C trace context. */
import { randomBytes, randomUUID } from "node:crypto";

const ID_OK = /^[\w.:@\-/+=]{1,128}$/;

/** The client's X-Request-Id when it is sane, otherwise a fresh one. */
export function requestId(incoming: string | string[] | undefined): string {
  return typeof incoming === "string" && ID_OK.test(incoming) ? incoming : randomUUID();
}

const TRACEPARENT = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/;

/**
 * The traceparent to send upstream: the caller's trace id with a new span id for this hop, or a
 * new trace when the caller sent none (or an invalid one, as the spec requires).
 */
export function nextTraceparent(incoming: string | string[] | undefined): string {
  const m = typeof incoming === "string" ? TRACEPARENT.exec(incoming.trim().toLowerCase()) : null;
  const span = randomBytes(8).toString("hex");
  if (m && m[1] !== "ff" && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!)) {
    return `00-${m[2]}-${span}-${m[4]}`;
  }
  return `00-${randomBytes(16).toString("hex")}-${span}-01`;
}
