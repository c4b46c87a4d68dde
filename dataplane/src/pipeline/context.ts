/** Per-request state shared by endpoint, middleware and backend. One object, no hidden globals. */
import type { IncomingMessage, ServerResponse, OutgoingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import { RequestBody } from "./body.js";
import { DEFAULT_PARSE_LIMITS, type ParseLimits } from "./body-parse.js";
import { DEFAULT_PATH_NORMALIZATION, type PathNormalization } from "./canonical-path.js";

export interface ProxyResponse {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer | Readable | null;
}

/**
 * Changes middleware asks for in the request the backend sends (metadata_transform's
 * `target_details`). The origin is not among them: which host a request may reach is the
 * backend's configuration, never something a transform over request data decides.
 */
export interface TargetOverrides {
  method?: string;
  /** Path and query below the backend's base, starting with `/`. */
  uri?: string;
  /** Replaces the query string. */
  query?: string;
  /** Set (or, with "", remove) upstream request headers. */
  headers?: Record<string, string>;
}

/**
 * What a request's context says about the route it matched: enough for plugins (the prefix they
 * strip, the pipeline they log). pipeline/compile.ts builds the full route, with its endpoint and
 * metric children, which only the executor reads; keeping it out of this type keeps the plugin
 * contract below the compiler.
 */
export interface RouteView {
  readonly prefix: string;
  readonly pipeline: { readonly name: string; readonly backendName: string; readonly right: readonly unknown[] };
}

export class RequestContext<R extends RouteView = RouteView> {
  /**
   * Path below the endpoint's prefix, always starting with `/` (`/api/users` for `/proxy/api/users`).
   * Canonical, like `path`.
   */
  readonly subpath: string;
  /** proxy.path_normalization: how `path` was made canonical, for paths middleware makes up. */
  readonly pathNormalization: PathNormalization;
  readonly body: RequestBody;
  /** Bounds for reading bodies as data (pipeline/body-parse.ts). */
  readonly parseLimits: ParseLimits;
  /** Set by a backend, or by middleware that answers without one. */
  response: ProxyResponse | undefined = undefined;
  /** True once something wrote the response to the client directly (streaming fast path). */
  responded = false;
  /** Status sent to the client, for logs and metrics. */
  status = 0;
  /** Backend time in nanoseconds, when a backend ran. */
  upstreamNs: bigint | undefined = undefined;
  /** Free-form data middleware hands to later stages (claims, extracted fields). */
  readonly locals: Record<string, unknown> = {};
  /** String key/values shared between middleware (the original's request and response metadata). */
  readonly metadata: Record<string, string> = {};
  /** Overrides for the upstream request, applied by HTTP backends. */
  readonly target: TargetOverrides = {};
  /** Client address, read up front: undici sets `req.socket` to null when it destroys a streamed request body. */
  readonly clientAddress: string | undefined;
  /** True when the client connected over TLS (read up front for the same reason). */
  readonly secure: boolean;

  constructor(
    readonly id: string,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly route: R,
    /**
     * Request path without the query string, in canonical form (pipeline/canonical-path.ts): what
     * routing, path rules and the access log saw, and what HTTP backends forward.
     */
    readonly path: string,
    /** Query string including the leading `?`, or "". Middleware may rewrite it (api_key drops its key). */
    public search: string,
    readonly startNs: bigint,
    limits: {
      bodyLimit: number;
      jsonDepthLimit: number;
      parseLimits?: ParseLimits;
      pathNormalization?: PathNormalization;
    },
    /** True for requests that came from another protocol (DIMSE) rather than an HTTP client. */
    readonly internal = false,
  ) {
    const p = route.prefix === "/" ? path : path.slice(route.prefix.length);
    this.subpath = p === "" ? "/" : p;
    this.body = new RequestBody(req, limits.bodyLimit, limits.jsonDepthLimit);
    this.parseLimits = limits.parseLimits ?? DEFAULT_PARSE_LIMITS;
    this.pathNormalization = limits.pathNormalization ?? DEFAULT_PATH_NORMALIZATION;
    this.clientAddress = req.socket.remoteAddress;
    this.secure = "encrypted" in req.socket;
  }

  /** Path rules ignore case (proxy.path_normalization.case_insensitive); the path itself keeps it. */
  get caseInsensitivePaths(): boolean {
    return this.pathNormalization.caseInsensitive;
  }

  get method(): string {
    return this.req.method ?? "GET";
  }

  /** The path (below the backend's base) and query a backend serves: the client's unless middleware set `target`. */
  get resource(): { path: string; search: string } {
    const uri = this.target.uri;
    if (uri === undefined) return { path: this.subpath, search: this.target.query ?? this.search };
    const q = uri.indexOf("?");
    const path = q < 0 ? uri : uri.slice(0, q);
    return { path, search: this.target.query ?? (q < 0 ? "" : uri.slice(q)) };
  }

  /** A request header as a backend should read it: `target.headers` first, then the client's. */
  header(name: string): string | undefined {
    const t = this.target.headers?.[name];
    if (t !== undefined) return t === "" ? undefined : t;
    const v = this.req.headers[name];
    return Array.isArray(v) ? v.join(", ") : v;
  }

  /**
   * True when no response middleware runs: a backend may then write the upstream response straight
   * to the client. Otherwise it hands over `ctx.response` (with a streaming body) for them to see.
   */
  get streamToClient(): boolean {
    return !this.internal && this.route.pipeline.right.length === 0;
  }
}
