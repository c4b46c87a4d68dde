/**
 * The lean request path: endpoint → middleware (left) → backend → middleware (right) → client.
 * No Express here; this is the code every proxied byte goes through.
 */
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { InternalRequest } from "../plugins/types.js";
import type { ParseLimits } from "./body-parse.js";
import { pipeline as pipe } from "node:stream/promises";
import type { Logger } from "winston";
import type { CompiledRoute } from "./compile.js";
import { RequestContext, type ProxyResponse } from "./context.js";
import { jsonResponse } from "./json-response.js";
import { ClientGoneError, HttpError, problemType, toProblem, writeProblem, type HarmonyProblem } from "./errors.js";
import { PathError, canonicalPath, type PathNormalization } from "./canonical-path.js";
import { bodyMayStall, watchBody, type BodyTimeoutLimits } from "./body-timeout.js";
import { requestId } from "./trace.js";
import type { AccessLog } from "../observability/access-log.js";

export interface ExecutorDeps {
  logger: Logger;
  /** Undefined when logging.access_log = false. */
  accessLog: AccessLog | undefined;
  bodyLimit: number;
  jsonDepthLimit: number;
  parseLimits: ParseLimits;
  /** proxy.path_normalization (the gateway applied it before routing; middleware may need it too). */
  pathNormalization: PathNormalization;
  /** proxy.client_body_timeout_ms / client_body_min_rate; undefined disables. */
  bodyTimeout?: BodyTimeoutLimits;
  onStart(): void;
  onEnd(): void;
}

/** Status recorded when the client went away before we could answer (nginx's convention). */
export const CLIENT_CLOSED = 499;

/**
 * A pipeline request over HTTP. A route where only the backend runs (no endpoint `onRequest`, no
 * middleware hook, no body still arriving to watch) takes the backend's `stream`: no promise and
 * no await between the request and its access line; every other route takes `run`.
 */
export function execute(
  route: CompiledRoute,
  req: IncomingMessage,
  res: ServerResponse,
  /** The canonical path (pipeline/canonical-path.ts) the route was matched on. */
  path: string,
  search: string,
  deps: ExecutorDeps,
): void {
  const ctx = new LeanRequest(
    requestId(req.headers["x-request-id"]),
    req,
    res,
    route,
    path,
    search,
    performance.now(),
    deps,
  );
  const stream = route.stream;
  const watched = deps.bodyTimeout !== undefined && bodyMayStall(req, deps.bodyTimeout);
  deps.onStart();
  if (stream === undefined || watched) {
    void run(ctx, watched);
    return;
  }
  ctx.backendStartMs = performance.now();
  stream(ctx, streamed);
}

/** The request's context with what the executor itself keeps for it: one object per request. */
class LeanRequest extends RequestContext<CompiledRoute> {
  /** When the backend started, while it runs (`performance.now()` ms). */
  backendStartMs = 0;

  constructor(
    id: string,
    req: IncomingMessage,
    res: ServerResponse,
    route: CompiledRoute,
    path: string,
    search: string,
    startMs: number,
    readonly deps: ExecutorDeps,
  ) {
    super(id, req, res, route, path, search, startMs, deps);
  }
}

/** The end of a `stream` exchange: what `run`'s catch and finally do for one. */
function streamed(c: RequestContext, err: unknown): void {
  const ctx = c as LeanRequest;
  if (err === undefined) {
    // The backend's end and the request's are the same moment here: one clock read for both.
    const end = performance.now();
    ctx.upstreamMs = end - ctx.backendStartMs;
    finish(ctx, ctx.deps, undefined, end);
    return;
  }
  fail(ctx, err, ctx.deps.logger);
  finish(ctx, ctx.deps);
}

async function run(ctx: LeanRequest, watched: boolean): Promise<void> {
  const { route, deps } = ctx;
  const pipeline = route.pipeline;
  const watch = watched ? watchTimeout(ctx, deps) : undefined;
  try {
    const ep = route.endpoint;
    if (ep.onRequest) await ep.onRequest(ctx);
    for (let i = 0; i < pipeline.left.length && !ctx.response && !ctx.responded; i++) {
      await pipeline.left[i]!(ctx);
    }
    if (!ctx.response && !ctx.responded) {
      if (!pipeline.backend) throw new HttpError(502, `pipeline "${pipeline.name}" has no backend`);
      const t0 = performance.now();
      await pipeline.backend.handle(ctx);
      ctx.upstreamMs = performance.now() - t0;
    }
    if (!ctx.responded) {
      for (const hook of pipeline.right) await hook(ctx);
      if (!ctx.response) throw new HttpError(502, "the backend produced no response");
      await send(ctx, ctx.response);
    }
  } catch (err) {
    // After a body timeout whatever failed (a body read, the upstream exchange) failed because of it.
    if (watch?.timedOut) ctx.status = 408;
    else fail(ctx, err, deps.logger);
  } finally {
    finish(ctx, deps);
  }
}

/**
 * Watches a request whose body is still arriving (pipeline/body-timeout.ts). Kept out of
 * `execute`: a closure there would give every request a context and a callback, and most
 * requests (a GET, a body that came with the head) have nothing to watch.
 */
function watchTimeout(ctx: RequestContext<CompiledRoute>, deps: ExecutorDeps): { timedOut: boolean } {
  const state = { timedOut: false };
  watchBody(ctx.req, deps.bodyTimeout!, (why) => {
    state.timedOut = true;
    timeOutBody(ctx, why, deps.logger);
  });
  return state;
}

/**
 * The client's body stalled: answer 408 while nothing has been sent, then drop the connection.
 * Destroying the request is what frees everything waiting on the body: a buffered read fails, and
 * an upstream request streaming it is aborted, so its pooled socket is released rather than held
 * for a body that never ends.
 */
function timeOutBody(ctx: RequestContext<CompiledRoute>, why: string, logger: Logger): void {
  const { req, res } = ctx;
  logger.warn("request body timed out", { request_id: ctx.id, pipeline: ctx.route.pipeline.name, reason: why });
  if (res.headersSent || res.destroyed) {
    req.destroy();
    return;
  }
  ctx.status = 408;
  const problem = { status: 408, title: "Request Timeout", detail: why, type: problemType("body-timeout") };
  writeProblem(res, { ...problem, headers: { connection: "close" } }, ctx.id);
  res.once("finish", () => req.destroy());
}

async function send(ctx: RequestContext<CompiledRoute>, r: ProxyResponse): Promise<void> {
  const res = ctx.res;
  ctx.status = r.status;
  r.headers["x-request-id"] = ctx.id;
  if (r.body === null || Buffer.isBuffer(r.body)) {
    if (r.body && r.headers["content-length"] === undefined) r.headers["content-length"] = r.body.length;
    res.writeHead(r.status, r.headers);
    res.end(r.body);
    return;
  }
  res.writeHead(r.status, r.headers);
  await pipe(r.body, res);
}

function fail(ctx: RequestContext<CompiledRoute>, err: unknown, logger: Logger): void {
  const res = ctx.res;
  if (
    err instanceof ClientGoneError ||
    (err as { code?: string }).code === "ERR_STREAM_PREMATURE_CLOSE" ||
    (res.destroyed && !res.headersSent)
  ) {
    ctx.status = CLIENT_CLOSED; // nobody is left to answer
    return;
  }
  const problem: HarmonyProblem = toProblem(err);
  if (!(err instanceof HttpError) || problem.status >= 500) {
    logger.log(problem.status >= 500 && !(err instanceof HttpError) ? "error" : "warn", "request failed", {
      request_id: ctx.id,
      pipeline: ctx.route.pipeline.name,
      status: problem.status,
      error: err instanceof Error ? err.message : String(err),
      // The cause (a socket error, a parser complaint) is for operators; clients get the problem only.
      ...(err instanceof Error && err.cause !== undefined ? { cause: describeCause(err.cause) } : {}),
      ...(err instanceof Error && !(err instanceof HttpError) ? { stack: err.stack } : {}),
    });
  }
  if (res.headersSent || res.destroyed) {
    // Mid-stream failure: the status line is out, so the only honest signal is a reset. Logs and
    // metrics record what went wrong (502/504), not the status the client saw first.
    ctx.status = problem.status;
    res.destroy();
    return;
  }
  ctx.status = problem.status;
  const endpoint = ctx.route.endpoint;
  if (endpoint.renderError) endpoint.renderError(problem, ctx, res);
  else writeProblem(res, problem, ctx.id);
}

function finish(ctx: RequestContext<CompiledRoute>, deps: ExecutorDeps, operation?: string, end?: number): void {
  deps.onEnd();
  const route = ctx.route;
  const ms = (end ?? performance.now()) - ctx.startMs;
  const status = ctx.status || ctx.res.statusCode;
  route.duration.observe(ms / 1e3);
  const upstreamMs = ctx.upstreamMs;
  if (upstreamMs !== undefined) route.upstreamDuration.observe(upstreamMs / 1e3);
  const method = ctx.method;
  // Most requests of a route have the previous one's method and status: then no key is built.
  const last = route.lastCount;
  let counter = last.counter;
  if (counter === undefined || last.method !== method || last.status !== status) {
    const key = method + " " + status;
    counter = route.requestsByKey.get(key);
    if (!counter) {
      counter = route.requests.labels(
        route.pipeline.name,
        route.endpointName,
        route.pipeline.backendName,
        method,
        String(status),
      );
      route.requestsByKey.set(key, counter);
    }
    last.method = method;
    last.status = status;
    last.counter = counter;
  }
  counter.inc();
  deps.accessLog?.line(
    ctx.id,
    method,
    ctx.path, // never the query string: it can carry credentials
    status,
    Math.round(ms * 1e3) / 1e3,
    upstreamMs === undefined ? undefined : Math.round(upstreamMs * 1e3) / 1e3,
    route.pipeline.name,
    route.endpointName,
    route.pipeline.backendName,
    ctx.clientAddress,
    operation,
  );
}

/**
 * The same path for a request that came from another protocol: a DIMSE operation the `dicom`
 * endpoint turned into a DICOMweb request. Nothing is written to a socket here; the response
 * (or the problem a failure becomes) is handed back to the caller, who speaks its own protocol.
 */
export async function executeInternal(
  route: CompiledRoute,
  ireq: InternalRequest,
  deps: ExecutorDeps,
): Promise<ProxyResponse> {
  const startMs = performance.now();
  // The same canonical path as an HTTP client's: a DIMSE identifier's UIDs end up in it, and a
  // "UID" of "../../x" must not reach a DICOMweb upstream as a traversal.
  let path = ireq.path;
  let badPath: PathError | undefined;
  try {
    path = canonicalPath(ireq.path, deps.pathNormalization);
  } catch (e) {
    if (!(e instanceof PathError)) throw e;
    badPath = e;
  }
  const headers: Record<string, string> = { ...ireq.headers };
  if (ireq.body) headers["content-length"] = String(ireq.body.length);
  const req = Object.assign(Readable.from(ireq.body ? [ireq.body] : []), {
    method: ireq.method,
    url: path + ireq.search,
    headers,
    httpVersion: "1.1",
    socket: { remoteAddress: ireq.clientAddress },
  }) as unknown as IncomingMessage;
  // No client socket: the backend hands its response over instead of writing it anywhere.
  const res = Object.assign(new EventEmitter(), {
    destroyed: false,
    writableFinished: false,
    headersSent: false,
    statusCode: 0,
  }) as unknown as ServerResponse;
  const id = requestId(undefined);
  const ctx = new RequestContext(id, req, res, route, path, ireq.search, startMs, deps, true);
  const pipeline = route.pipeline;
  deps.onStart();
  try {
    if (badPath) throw new HttpError(400, badPath.message, { type: problemType("bad-path") });
    for (let i = 0; i < pipeline.left.length && !ctx.response; i++) await pipeline.left[i]!(ctx);
    if (!ctx.response) {
      if (!pipeline.backend) throw new HttpError(502, `pipeline "${pipeline.name}" has no backend`);
      const t0 = performance.now();
      await pipeline.backend.handle(ctx);
      ctx.upstreamMs = performance.now() - t0;
    }
    for (const hook of pipeline.right) await hook(ctx);
    if (!ctx.response) throw new HttpError(502, "the backend produced no response");
    ctx.status = ctx.response.status;
    return ctx.response;
  } catch (err) {
    const problem = toProblem(err);
    ctx.status = problem.status;
    if (!(err instanceof HttpError) || problem.status >= 500) {
      deps.logger.log(err instanceof HttpError ? "warn" : "error", "request failed", {
        request_id: id,
        pipeline: pipeline.name,
        operation: ireq.label,
        status: problem.status,
        error: err instanceof Error ? err.message : String(err),
        ...(err instanceof Error && err.cause !== undefined ? { cause: describeCause(err.cause) } : {}),
      });
    }
    return jsonResponse(problem.status, { title: problem.title, status: problem.status, detail: problem.detail });
  } finally {
    finish(ctx, deps, ireq.label);
  }
}

function describeCause(c: unknown): string {
  if (!(c instanceof Error)) return String(c);
  const code = (c as { code?: string }).code;
  return `${c.name}${code ? ` ${code}` : ""}: ${c.message}`;
}
