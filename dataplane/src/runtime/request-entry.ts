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
    const malformed = malformedHead(req);
    if (malformed) {
      this.env.metrics.unrouted.inc({ network, status: "400" });
      const problem = { status: 400, title: "Bad Request", detail: malformed, headers: { connection: "close" } };
      writeProblem(res, problem, requestId(req.headers["x-request-id"]));
      return;
    }
    dropConnectionNamed(req.headers);
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const raw = q < 0 ? url : url.slice(0, q);
    const table: RouteTable<CompiledRoute> | undefined = live.gen.tables.get(network);
    let path = raw;
    if (raw.charCodeAt(0) === 47) {
      // The one canonical form routing, policies, path_filter, the access log and the upstream
      // request all use ("/x/%2e%2e%2fadmin" must not match /x here and reach /admin upstream).
      try {
        path = canonicalPath(raw, live.gen.config.pathNormalization);
      } catch (e) {
        if (!(e instanceof PathError)) throw e;
        this.env.metrics.unrouted.inc({ network, status: "400" });
        writeProblem(
          res,
          { status: 400, title: "Bad Request", type: problemType("bad-path"), detail: e.message },
          requestId(req.headers["x-request-id"]),
        );
        return;
      }
    }
    // The network's configured listener, not the listener object: while a listener that could not
    // be bound is retried, its last good one serves, and the guard must still be the configured one.
    const harmony = live.gen.config.networks.get(network)?.harmony;
    if (harmony) {
      // An inter-gateway listener: verified peer identity and network policy before anything else.
      const net = live.gen.config.harmonyNetworks.get(harmony.network);
      const id = requestId(req.headers["x-request-id"]);
      if (!net) {
        writeProblem(res, { status: 503, title: "Service Unavailable", detail: "network not loaded" }, id);
        return;
      }
      if (!guardRequest(net, req, res, path, id, this.env.logger)) return;
    }
    const search = q < 0 ? "" : url.slice(q);
    const m =
      path.charCodeAt(0) !== 47 || !table
        ? undefined
        : table.pathOnly
          ? table.match(req.method ?? "GET", path)
          : table.match(req.method ?? "GET", path, { headers: req.headers, search });
    if (m && "route" in m) {
      execute(m.route, req, res, path, search, live.deps);
      return;
    }
    const mg = live.gen.config.management;
    if (mg.enabled && mg.network === network && !m) {
      this.env.management(req, res);
      return;
    }
    const id = requestId(req.headers["x-request-id"]);
    const status = m ? 405 : 404;
    this.env.metrics.unrouted.inc({ network, status: String(status) });
    writeProblem(
      res,
      m
        ? {
            status: 405,
            title: "Method Not Allowed",
            detail: `${req.method} is not allowed on ${path}`,
            headers: { allow: m.allow.join(", ") },
          }
        : { status: 404, title: "Not Found", detail: `no pipeline serves ${path}` },
      id,
    );
  }
}
