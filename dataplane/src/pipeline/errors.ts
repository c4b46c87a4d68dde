/**
 * Errors that become HTTP responses. Everything a request can fail with ends up as a
 * HarmonyProblem, rendered as application/problem+json (RFC 9457) unless the endpoint renders
 * its own protocol's error shape.
 */
import { STATUS_CODES, type ServerResponse } from "node:http";

export interface HarmonyProblem {
  status: number;
  title: string;
  detail?: string;
  /** URI naming the problem kind; `about:blank` when the status says it all. */
  type?: string;
  /** Extra response headers (WWW-Authenticate, Retry-After, Allow...). */
  headers?: Record<string, string>;
}

export class HttpError extends Error implements HarmonyProblem {
  readonly title: string;
  readonly type: string | undefined;
  readonly headers: Record<string, string> | undefined;
  constructor(
    readonly status: number,
    readonly detail?: string,
    opts: { title?: string; type?: string; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(detail ?? STATUS_CODES[status] ?? "error", { cause: opts.cause });
    this.name = "HttpError";
    this.title = opts.title ?? STATUS_CODES[status] ?? "Error";
    this.type = opts.type;
    this.headers = opts.headers;
  }
}

/** The client went away before the response was complete; there is nobody to tell. */
export class ClientGoneError extends Error {
  constructor() {
    super("client closed the connection");
    this.name = "ClientGoneError";
  }
}

const PROBLEM_BASE = "https://harmony.runbeam.io/problems/";
export const problemType = (slug: string): string => PROBLEM_BASE + slug;

/** Maps anything thrown inside a pipeline to the problem the client sees. Never leaks internals. */
export function toProblem(err: unknown): HarmonyProblem {
  if (err instanceof HttpError) return err;
  return {
    status: 500,
    title: "Internal Server Error",
    type: problemType("internal"),
    detail: "The gateway failed to process the request; see the gateway log for this request id.",
  };
}

export function writeProblem(res: ServerResponse, problem: HarmonyProblem, requestId: string): void {
  if (res.headersSent) {
    // Nothing honest can be said any more; cut the connection so the client sees a failure.
    res.destroy();
    return;
  }
  const body = JSON.stringify({
    type: problem.type ?? "about:blank",
    title: problem.title,
    status: problem.status,
    ...(problem.detail ? { detail: problem.detail } : {}),
    instance: `urn:request:${requestId}`,
  });
  res.writeHead(problem.status, {
    ...problem.headers,
    "content-type": "application/problem+json",
    "content-length": Buffer.byteLength(body),
    "x-request-id": requestId,
  });
  res.end(body);
}
