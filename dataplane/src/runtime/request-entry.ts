/**
 * Where every HTTP request on a network's listener enters: the lean path. The live generation is
 * read once; the path is checked and put in its one canonical form; an inter-gateway listener's
 * guard runs; then the route table hands the request to its pipeline, or to management, or it is
 * answered 404/405 here.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "winston";
import type { CompiledRoute } from "../pipeline/compile.js";
import { execute } from "../pipeline/executor.js";
import { problemType, writeProblem } from "../pipeline/errors.js";
import { PathError, canonicalPath } from "../pipeline/canonical-path.js";
import { requestId } from "../pipeline/trace.js";
import type { RouteTable } from "../pipeline/route-table.js";
import type { Metrics } from "../observability/metrics.js";
import { guardRequest } from "../network/guard.js";
import { closeAfterResponse } from "./connection-close.js";
import type { Generations } from "./generation.js";
import { dropConnectionNamed, malformedHead } from "./request-guard.js";

export class RequestEntry {
  /** Requests this process has taken (a group's /admin/info shows it per worker). */
  served = 0;

  constructor(
    private readonly env: {
      generations: Generations;
      logger: Logger;
      metrics: Metrics;
      management: (req: IncomingMessage, res: ServerResponse) => void;
      stopping: () => boolean;
    },
  ) {}

  handle(network: string, req: IncomingMessage, res: ServerResponse): void {
    const live = this.env.generations.current;
    this.served++;
    if (!live) {
      // Listeners are bound before the first generation goes live; a request in that gap waits for nothing.
      writeProblem(res, { status: 503, title: "Service Unavailable", detail: "starting" }, requestId(undefined));
      return;
    }
    if (this.env.stopping()) closeAfterResponse(req, res);
    const d = this.decide(network, req, live);
    switch (d.kind) {
      case "route":
        execute(d.route, req, res, d.path, d.search, live.deps);
        return;
      case "malformed": {
        this.env.metrics.unrouted.inc({ network, status: "400" });
        const problem = { status: 400, title: "Bad Request", detail: d.detail, headers: { connection: "close" } };
        writeProblem(res, problem, requestId(req.headers["x-request-id"]));
        return;
      }
      case "bad-path":
        this.env.metrics.unrouted.inc({ network, status: "400" });
        writeProblem(
          res,
          { status: 400, title: "Bad Request", type: problemType("bad-path"), detail: d.detail },
          requestId(req.headers["x-request-id"]),
        );
        return;
      case "guard": {
        // An inter-gateway listener: verified peer identity and network policy before anything else.
        const net = live.gen.config.harmonyNetworks.get(d.network);
        const id = requestId(req.headers["x-request-id"]);
        if (!net) {
          writeProblem(res, { status: 503, title: "Service Unavailable", detail: "network not loaded" }, id);
          return;
        }
        if (!guardRequest(net, req, res, d.path, id, this.env.logger)) return;
        const after = this.match(network, req, live, d.path, d.search);
        if (after.kind === "route") execute(after.route, req, res, d.path, d.search, live.deps);
        else this.unrouted(network, req, res, after, d.path);
        return;
      }
      default:
        this.unrouted(network, req, res, d, d.path);
    }
  }

  /**
   * The llhttp lane's entry (plain HTTP/1.1 listeners): the same checks as `handle` up to the
   * match, and the route run when it is a backend-only one (`route.stream`). Anything else (no
   * generation yet, a head `handle` refuses, management, 404/405, a route with middleware)
   * returns false having written nothing: the lane then hands the request to node:http, whose
   * `handle` answers it. `closeAfter`: the listener is retiring.
   */
  serveFast(network: string, req: IncomingMessage, res: ServerResponse, closeAfter: boolean): boolean {
    const live = this.env.generations.current;
    if (!live) return false;
    const d = this.decide(network, req, live);
    if (d.kind !== "route" || d.route.stream === undefined) return false;
    this.served++;
    if (closeAfter || this.env.stopping()) closeAfterResponse(req, res);
    execute(d.route, req, res, d.path, d.search, live.deps);
    return true;
  }

  /** Everything `handle` checks before a route runs, with nothing written. */
  private decide(network: string, req: IncomingMessage, live: LiveGeneration): Decision {
    const malformed = malformedHead(req);
    if (malformed) return { kind: "malformed", detail: malformed };
    dropConnectionNamed(req.headers);
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const raw = q < 0 ? url : url.slice(0, q);
    let path = raw;
    if (raw.charCodeAt(0) === 47) {
      // The one canonical form routing, policies, path_filter, the access log and the upstream
      // request all use ("/x/%2e%2e%2fadmin" must not match /x here and reach /admin upstream).
      try {
        path = canonicalPath(raw, live.gen.config.pathNormalization);
      } catch (e) {
        if (!(e instanceof PathError)) throw e;
        return { kind: "bad-path", detail: e.message };
      }
    }
    const search = q < 0 ? "" : url.slice(q);
    // The network's configured listener, not the listener object: while a listener that could not
    // be bound is retried, its last good one serves, and the guard must still be the configured one.
    const harmony = live.gen.config.networks.get(network)?.harmony;
    if (harmony) return { kind: "guard", network: harmony.network, path, search };
    return this.match(network, req, live, path, search);
  }

  private match(network: string, req: IncomingMessage, live: LiveGeneration, path: string, search: string): Matched {
    const table: RouteTable<CompiledRoute> | undefined = live.gen.tables.get(network);
    const m =
      path.charCodeAt(0) !== 47 || !table
        ? undefined
        : table.pathOnly
          ? table.match(req.method ?? "GET", path)
          : table.match(req.method ?? "GET", path, { headers: req.headers, search });
    if (m && "route" in m) return { kind: "route", route: m.route, path, search };
    const mg = live.gen.config.management;
    if (mg.enabled && mg.network === network && !m) return { kind: "management", path };
    return m ? { kind: "not-allowed", allow: m.allow, path } : { kind: "not-found", path };
  }

  private unrouted(
    network: string,
    req: IncomingMessage,
    res: ServerResponse,
    d: Exclude<Matched, { kind: "route" }>,
    path: string,
  ): void {
    if (d.kind === "management") {
      this.env.management(req, res);
      return;
    }
    const id = requestId(req.headers["x-request-id"]);
    const status = d.kind === "not-allowed" ? 405 : 404;
    this.env.metrics.unrouted.inc({ network, status: String(status) });
    writeProblem(
      res,
      d.kind === "not-allowed"
        ? {
            status: 405,
            title: "Method Not Allowed",
            detail: `${req.method} is not allowed on ${path}`,
            headers: { allow: d.allow.join(", ") },
          }
        : { status: 404, title: "Not Found", detail: `no pipeline serves ${path}` },
      id,
    );
  }
}

type LiveGeneration = NonNullable<Generations["current"]>;

/** Where the route table sends a request. */
type Matched =
  | { kind: "route"; route: CompiledRoute; path: string; search: string }
  | { kind: "management"; path: string }
  | { kind: "not-allowed"; allow: readonly string[]; path: string }
  | { kind: "not-found"; path: string };

/** What `handle` does with a request, decided before anything is written. */
type Decision =
  | Matched
  | { kind: "malformed"; detail: string }
  | { kind: "bad-path"; detail: string }
  /** An inter-gateway listener: its guard runs (and may answer) before the match. */
  | { kind: "guard"; network: string; path: string; search: string };
