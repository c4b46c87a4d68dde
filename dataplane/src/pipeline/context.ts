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

/** `target` of a request no middleware has touched: read by backends, never written. */
const NO_OVERRIDES: Readonly<TargetOverrides> = Object.freeze({});

export class RequestContext<R extends RouteView = RouteView> {
  /**
   * Path below the endpoint's prefix, always starting with `/` (`/api/users` for `/proxy/api/users`).
   * Canonical, like `path`.
   */
  readonly subpath: string;
  /** proxy.path_normalization: how `path` was made canonical, for paths middleware makes up. */
  readonly pathNormalization: PathNormalization;
  /** Bounds for reading bodies as data (pipeline/body-parse.ts). */
  readonly parseLimits: ParseLimits;
  /** Set by a backend, or by middleware that answers without one. */
  response: ProxyResponse | undefined = undefined;
  /** True once something wrote the response to the client directly (streaming fast path). */
  responded = false;
  /** Status sent to the client, for logs and metrics. */
  status = 0;
  /** Backend time in milliseconds (fractional), when a backend ran. */
  upstreamMs: number | undefined = undefined;
  /** Client address, read up front: undici sets `req.socket` to null when it destroys a streamed request body. */
  readonly clientAddress: string | undefined;
  /** True when the client connected over TLS (read up front for the same reason). */
  readonly secure: boolean;
  // Made on first use: a proxied request that no middleware looks at needs none of them, and
  // each is an allocation per request on the lean path (bench/README.md, issue 18).
  private _body: RequestBody | undefined = undefined;
  private _locals: Record<string, unknown> | undefined = undefined;
  private _metadata: Record<string, string> | undefined = undefined;
  private _target: TargetOverrides | undefined = undefined;

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
    /** Arrival time, `performance.now()` milliseconds. */
    readonly startMs: number,
    private readonly limits: {
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
    this.parseLimits = limits.parseLimits ?? DEFAULT_PARSE_LIMITS;
    this.pathNormalization = limits.pathNormalization ?? DEFAULT_PATH_NORMALIZATION;
    this.clientAddress = req.socket.remoteAddress;
    this.secure = "encrypted" in req.socket;
  }

  get body(): RequestBody {
    return (this._body ??= new RequestBody(this.req, this.limits.bodyLimit, this.limits.jsonDepthLimit));
  }

  /** Free-form data middleware hands to later stages (claims, extracted fields). */
  get locals(): Record<string, unknown> {
    return (this._locals ??= {});
  }

  /** String key/values shared between middleware (the original's request and response metadata). */
  get metadata(): Record<string, string> {
    return (this._metadata ??= {});
  }

  /** Overrides for the upstream request, applied by HTTP backends. */
  get target(): TargetOverrides {
    return (this._target ??= {});
  }

  /** `target` for reading only: no object is made for a request that has none (the common case). */
  get overrides(): Readonly<TargetOverrides> {
    return this._target ?? NO_OVERRIDES;
  }

  /**
   * What a backend sends as the request body: the buffer if anyone read or replaced it, else the
   * live request (or null when there is none). `body.forUpstream()` without making `body`.
   */
  bodyForUpstream(): Buffer | IncomingMessage | null {
    return this._body ? this._body.forUpstream() : RequestBody.unread(this.req);
  }

  /** The request body's content type, as a middleware that replaced the body left it. */
  get contentType(): string | undefined {
    return this._body ? this._body.contentType : this.req.headers["content-type"];
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
    const t = this.overrides;
    const uri = t.uri;
    if (uri === undefined) return { path: this.subpath, search: t.query ?? this.search };
    const q = uri.indexOf("?");
    const path = q < 0 ? uri : uri.slice(0, q);
    return { path, search: t.query ?? (q < 0 ? "" : uri.slice(q)) };
  }

  /** A request header as a backend should read it: `target.headers` first, then the client's. */
  header(name: string): string | undefined {
    const t = this._target?.headers?.[name];
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
