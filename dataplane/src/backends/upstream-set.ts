/**
 * The upstream origins of an HTTP backend: one (`base_url`) or several (`upstreams`, filled from
 * `targets = ["a", "b"]` at config load), each with its own keep-alive pool, and the Balancer
 * that spreads requests over them. Pools and balancer state are shared resources, so a reload
 * that keeps the settings keeps warm sockets and what passive health has learnt; an active
 * health check runs while some config generation uses the set.
 */
import { createHash } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import { Pool, type Dispatcher } from "undici";
import { H1Pool } from "../http1/pool.js";
import { connector } from "../http1/connect.js";
import { llhttpBinding } from "../http1/llhttp.js";
import type { BuildContext } from "../plugins/types.js";
import { Balancer, type TargetState } from "./balancer.js";
import type { PeerTls } from "../network/target.js";

const TlsOptions = Type.Object(
  {
    insecure_skip_verify: Type.Optional(
      Type.Boolean({ description: "Accept any upstream certificate (testing only)." }),
    ),
    ca_path: Type.Optional(Type.String({ description: "PEM CA bundle to verify the upstream with." })),
    server_name: Type.Optional(Type.String({ description: "SNI and verification name." })),
    cert_path: Type.Optional(Type.String({ description: "Client certificate (mTLS)." })),
    key_path: Type.Optional(Type.String({ description: "Client key (mTLS)." })),
  },
  { additionalProperties: false },
);

export const upstreamSetProperties = {
  tls: Type.Optional(TlsOptions),
  upstreams: Type.Optional(
    Type.Array(
      Type.Object(
        {
          name: Type.String({ minLength: 1, description: "Target name (metrics, logs)." }),
          base_url: Type.Optional(
            Type.String({ description: "The target's base URL (required unless static_status)." }),
          ),
          weight: Type.Integer({
            minimum: 0,
            default: 1,
            description: "Share of requests (weighted round robin); 0: never chosen.",
          }),
          static_status: Type.Optional(
            Type.Integer({
              minimum: 100,
              maximum: 599,
              description: "Answer this status without connecting (a backendRef that does not resolve).",
            }),
          ),
          tls: Type.Optional(TlsOptions),
          headers: Type.Optional(Type.Record(Type.String(), Type.String())),
        },
        { additionalProperties: false },
      ),
      {
        minItems: 1,
        description: 'Several origins for one backend; usually written as `targets = ["a", "b"]` on the backend.',
      },
    ),
  ),
  balance: Type.Union([Type.Literal("round_robin"), Type.Literal("least_request")], {
    default: "round_robin",
    description: "How requests are spread over several targets.",
  }),
  max_failures: Type.Integer({
    minimum: 0,
    default: 5,
    description: "Consecutive connection failures or timeouts that eject a target (0: never).",
  }),
  consecutive_5xx: Type.Integer({
    minimum: 0,
    default: 5,
    description:
      "Consecutive 5xx answers that eject a target, as Envoy's outlier detection (0: 5xx answers never eject).",
  }),
  retry_on_5xx: Type.Boolean({
    default: false,
    description:
      "Also retry an idempotent request answered 5xx, on another target (Envoy's retry_on: 5xx); the last try's answer is passed on.",
  }),
  eject_secs: Type.Number({ minimum: 0, default: 30, description: "How long an ejected target rests." }),
  health_check: Type.Optional(
    Type.Object(
      {
        path: Type.String({ pattern: "^/", default: "/", description: "Path probed on every target (GET)." }),
        interval_secs: Type.Number({ exclusiveMinimum: 0, default: 10, description: "Time between probes." }),
        timeout_ms: Type.Integer({ minimum: 1, default: 2000, description: "A probe slower than this fails." }),
      },
      { additionalProperties: false, description: "Active health checks: a target answering non-2xx/3xx is down." },
    ),
  ),
};

type SetOptions = {
  base_url?: string;
  client?: "undici" | "llhttp";
  target?: string;
  headers?: Record<string, string>;
  connect_timeout_ms: number;
  max_connections: number;
  keep_alive_timeout_ms: number;
  headers_timeout_ms: number;
  body_timeout_ms: number;
} & Static<ReturnType<typeof Type.Object<typeof upstreamSetProperties>>>;

export interface Upstream {
  name: string;
  url: URL;
  /** `url.host`, read once: the URL getter slices a new string on every call, and every request sends it. */
  host: string;
  /** Path of the base URL without a trailing slash. */
  basePath: string;
  /** Undefined only for a static target, which never connects. */
  pool: Dispatcher | undefined;
  headers: Record<string, string>;
  /** Share of requests; 0: never chosen. */
  weight: number;
  /** A target that answers this status itself (`static_status`). */
  staticStatus?: number;
}

// A static target has no URL; this one never resolves (RFC 6761) and is never connected to: it
// only gives the code that derives public URLs from an upstream something well-formed to read.
const STATIC_URL = "http://static.invalid";

export interface UpstreamSet {
  upstreams: Upstream[];
  balancer: Balancer;
}

export function createUpstreamSet(o: SetOptions, ctx: BuildContext, peerTls?: PeerTls): UpstreamSet {
  const list = o.upstreams ?? [
    { name: ctx.name, base_url: (o.base_url ?? o.target)!, tls: o.tls, headers: {}, weight: 1 },
  ];
  const upstreams = list.map((u): Upstream => {
    const url = new URL(u.static_status === undefined ? u.base_url! : STATIC_URL);
    return {
      name: u.name,
      url,
      host: url.host,
      basePath: url.pathname.replace(/\/+$/, ""),
      pool: u.static_status === undefined ? pool(o, ctx, url, u.tls ?? o.tls ?? {}, peerTls) : undefined,
      headers: { ...(o.headers ?? {}), ...(u.headers ?? {}) },
      weight: u.weight ?? 1,
      staticStatus: u.static_status,
    };
  });
  if (upstreams.length === 1) {
    // One origin: nothing to balance or probe; a trivial balancer keeps one code path.
    return { upstreams, balancer: new Balancer([upstreams[0]!.name], "round_robin", 0, 0) };
  }
  const key =
    "upstream-set:" +
    createHash("sha256")
      .update(
        JSON.stringify([ctx.name, list, o.balance, o.max_failures, o.consecutive_5xx, o.eject_secs, o.health_check]),
      )
      .digest("hex");
  const shared = ctx.resources.acquire(key, () => new SharedSet(ctx, upstreams, o));
  // Pools come from the generation being built (they may be newer); the balancer state carries over.
  return { upstreams, balancer: shared.balancer };
}

/** Balancer state and the active health checker of one backend's targets, alive across reloads. */
class SharedSet {
  readonly balancer: Balancer;
  private timer: NodeJS.Timeout | undefined;
  private first: NodeJS.Immediate | undefined;

  constructor(ctx: BuildContext, upstreams: Upstream[], o: SetOptions) {
    const onHealth = (t: TargetState, healthy: boolean) => {
      ctx.logger.warn(healthy ? "upstream target back in rotation" : "upstream target taken out of rotation", {
        backend: ctx.name,
        target: t.name,
        failures: t.failures,
      });
      ctx.metrics?.upstreamTargetHealthy.set({ backend: ctx.name, target: t.name }, healthy ? 1 : 0);
    };
    this.balancer = new Balancer(
      upstreams.map((u) => u.name),
      o.balance,
      o.max_failures,
      o.eject_secs * 1000,
      Date.now,
      onHealth,
      o.consecutive_5xx,
      upstreams.map((u) => u.weight),
    );
    for (const u of upstreams) ctx.metrics?.upstreamTargetHealthy.set({ backend: ctx.name, target: u.name }, 1);
    const hc = o.health_check;
    if (hc) {
      const probeAll = () => {
        upstreams.forEach((u, i) => {
          if (!u.pool) return; // a static target answers without being asked
          u.pool
            .request({
              path: u.basePath + hc.path,
              method: "GET",
              headers: { host: u.url.host, ...u.headers },
              headersTimeout: hc.timeout_ms,
              bodyTimeout: hc.timeout_ms,
            })
            .then(async (r) => {
              await r.body.dump();
              this.balancer.probe(i, r.statusCode >= 200 && r.statusCode < 400);
            })
            .catch(() => this.balancer.probe(i, false));
        });
      };
      // Nothing is probed synchronously: validating a config (--check, the operator) builds this
      // and closes it in the same tick, and must not send traffic to the targets.
      this.first = setImmediate(probeAll);
      this.timer = setInterval(probeAll, hc.interval_secs * 1000);
      this.timer.unref();
    }
  }

  close(): Promise<void> {
    clearImmediate(this.first);
    clearInterval(this.timer);
    return Promise.resolve();
  }
}

function pool(
  o: SetOptions,
  ctx: BuildContext,
  url: URL,
  tls: Static<typeof TlsOptions>,
  peerTls: PeerTls | undefined,
): Dispatcher {
  const read = (p: string | undefined) => (p ? ctx.readFile(p) : undefined);
  const connect = {
    timeout: o.connect_timeout_ms,
    ...(peerTls
      ? {
          // A peer gateway (harmony:// target): mutual TLS, server named by its SPIFFE identity.
          rejectUnauthorized: true,
          ca: peerTls.ca,
          cert: peerTls.cert,
          key: peerTls.key,
          peerIdentity: peerTls.identity,
          checkServerIdentity: peerTls.checkServerIdentity,
        }
      : url.protocol === "https:"
        ? {
            rejectUnauthorized: !tls.insecure_skip_verify,
            ca: read(tls.ca_path),
            cert: read(tls.cert_path),
            key: read(tls.key_path),
            servername: tls.server_name ?? url.hostname,
          }
        : {}),
  };
  // Pools are shared across reloads while their settings are unchanged, so a reload keeps warm sockets.
  const poolKey =
    "http-pool:" +
    createHash("sha256")
      .update(
        JSON.stringify([
          engine(o),
          url.origin,
          o.max_connections,
          o.keep_alive_timeout_ms,
          o.headers_timeout_ms,
          o.body_timeout_ms,
          connect,
        ]),
      )
      .digest("hex");
  if (engine(o) === "llhttp")
    return ctx.resources.acquire(
      poolKey,
      () =>
        new H1Pool(url.origin, {
          connections: o.max_connections,
          keepAliveTimeout: o.keep_alive_timeout_ms,
          headersTimeout: o.headers_timeout_ms,
          bodyTimeout: o.body_timeout_ms,
          connectTimeout: o.connect_timeout_ms,
          // The same TLS settings as undici's below, applied as undici applies them.
          connect: connector(url, connect),
        }),
    );
  return ctx.resources.acquire(
    poolKey,
    () =>
      new Pool(url.origin, {
        connections: o.max_connections,
        keepAliveTimeout: o.keep_alive_timeout_ms,
        headersTimeout: o.headers_timeout_ms,
        bodyTimeout: o.body_timeout_ms,
        connect,
      }),
  );
}

/**
 * The engine a backend runs on: `client`, "llhttp" by default. Without Node's parser binding (a
 * Node that stops exposing it) llhttp falls back to undici; checkHttpUpstream warns about it.
 */
function engine(o: SetOptions): "undici" | "llhttp" {
  return (o.client ?? "llhttp") === "llhttp" && llhttpBinding() ? "llhttp" : "undici";
}
