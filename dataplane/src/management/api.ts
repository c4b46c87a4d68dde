/**
 * The management API on Express: admin routes, health, readiness and metrics. Off the hot path,
 * so Express's conveniences cost nothing that matters here.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import express, { type Request, type Response, type NextFunction } from "express";
import type { Metrics } from "../observability/metrics.js";
import { writeProblem } from "../pipeline/errors.js";
import { requestId } from "../pipeline/trace.js";
import { redact } from "./redact.js";
import { refuseByHost } from "./hosts.js";
import type { ManagementView } from "./view.js";

export function createManagementApp(view: ManagementView, metrics: Metrics): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res, next) => {
    // The config hash is here (unauthenticated, like the probe itself) so the operator can tell
    // which config each pod serves without an admin token.
    try {
      const r = await view.readiness();
      res.status(r.ready ? 200 : 503).json({
        status: r.ready ? "ready" : "not ready",
        ...(r.reason ? { reason: r.reason } : {}),
        ...(r.configHash ? { config_hash: r.configHash } : {}),
      });
    } catch (e) {
      next(e);
    }
  });
  // Probes stay answerable under any Host (kubelet sends the pod IP); everything below is checked.
  app.use((req, res, next) => {
    const origin = req.headers.origin;
    const host = req.headers.host ?? (req.headers[":authority"] as string | undefined); // HTTP/2 has no Host
    const refused = refuseByHost(view.hostPolicy(), req.method, host, origin);
    if (!refused) return next();
    view.logger().warn("management request refused", { status: refused.status, host, origin });
    writeProblem(
      res,
      {
        status: refused.status,
        title: refused.status === 421 ? "Misdirected Request" : "Forbidden",
        detail: refused.detail,
      },
      requestId(req.headers["x-request-id"]),
    );
  });
  app.get("/metrics", async (_req, res, next) => {
    try {
      const text = view.metrics ? await view.metrics() : await metrics.registry.metrics();
      res.type(metrics.registry.contentType).send(text);
    } catch (e) {
      next(e);
    }
  });

  const admin = express.Router();
  admin.use((req, res, next) => authorize(view, req, res, next));
  admin.get("/info", async (_req, res, next) => {
    try {
      const info = view.info();
      if (view.group) {
        // A group's workers: the primary watches the API, so its status is the one to show.
        const g = await view.group();
        if (g.kubernetes) info.config.kubernetes = g.kubernetes;
        res.json({ ...info, workers: g.workers });
      } else res.json(info);
    } catch (e) {
      next(e);
    }
  });
  admin.get("/pipelines", (_req, res) => {
    res.json({ pipelines: view.pipelines() });
  });
  admin.get("/routes", (_req, res) => {
    res.json({ routes: view.routes() });
  });
  admin.get("/config", (_req, res) => {
    res.json({ hash: view.info().config.hash, config: redact(view.document()) });
  });
  admin.post("/reload", async (_req, res, next) => {
    try {
      const r = await view.reload("api");
      res.status(r.ok ? 200 : 422).json(r);
    } catch (e) {
      next(e);
    }
  });
  app.use((req, res, next) => {
    const base = view.basePath();
    if (req.path === base || req.path.startsWith(base + "/")) {
      req.url = req.url.slice(base.length) || "/";
      return admin(req, res, next);
    }
    next();
  });

  app.use((req: Request, res: Response) => {
    writeProblem(
      res,
      { status: 404, title: "Not Found", detail: `no route for ${req.method} ${req.path}` },
      requestId(req.headers["x-request-id"]),
    );
  });
  app.use((err: Error, req: Request, res: Response, _next: NextFunction) => {
    view.logger().error("management request failed", { error: err.message, path: req.path });
    writeProblem(res, { status: 500, title: "Internal Server Error" }, requestId(req.headers["x-request-id"]));
  });
  return app;
}

function authorize(view: ManagementView, req: Request, res: Response, next: NextFunction): void {
  const id = requestId(req.headers["x-request-id"]);
  const token = view.token();
  if (token === undefined) {
    if (view.loopbackOnly()) return next();
    return writeProblem(
      res,
      {
        status: 403,
        title: "Forbidden",
        detail: "the admin API is bound beyond loopback and no management token is configured",
      },
      id,
    );
  }
  const auth = req.headers.authorization ?? "";
  const given = auth.startsWith("Bearer ") ? auth.slice(7) : "";
  if (given && safeEqual(given, token)) return next();
  writeProblem(
    res,
    {
      status: 401,
      title: "Unauthorized",
      detail: "a valid bearer token is required",
      headers: { "www-authenticate": 'Bearer realm="harmony-admin"' },
    },
    id,
  );
}

function safeEqual(a: string, b: string): boolean {
  const h = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(h(a), h(b));
}
