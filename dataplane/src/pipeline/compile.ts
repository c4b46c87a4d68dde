/**
 * Compiles a resolved config into a generation: plugin instances, pipelines with their
 * middleware split by side, and one route table per network. A generation is immutable; a
 * reload builds a new one and swaps it in whole.
 */
import type { CounterChild, FastCounter, HistogramChild } from "../observability/fast-metrics.js";
import type { ResolvedConfig, ResolvedPlugin } from "../config/resolve.js";
import type { Problem } from "../config/problems.js";
import { displayPath } from "../config/problems.js";
import type { BackendInstance, BuildContext, EndpointInstance, MiddlewareInstance } from "../plugins/types.js";
import type { Metrics } from "../observability/metrics.js";
import { RouteTable, normalizeExactPath, normalizePrefix, type RouteEntry } from "./route-table.js";
import { routeConditions } from "./route-conditions.js";

type OnRequest = NonNullable<MiddlewareInstance["onRequest"]>;
type OnResponse = NonNullable<MiddlewareInstance["onResponse"]>;

export interface CompiledPipeline {
  name: string;
  description: string;
  networks: string[];
  endpoints: string[];
  backendName: string;
  backend: BackendInstance | undefined;
  /** Request-side hooks, bound, in run order (middleware without one are left out). */
  left: OnRequest[];
  right: OnResponse[];
  middleware: { left: string[]; right: string[] };
}

export interface CompiledRoute {
  pipeline: CompiledPipeline;
  endpointName: string;
  endpoint: EndpointInstance;
  prefix: string;
  methods: readonly string[] | "*";
  /** Bound metric children (no label hashing per request). */
  duration: HistogramChild;
  upstreamDuration: HistogramChild;
  requestsByKey: Map<string, CounterChild>;
  requests: FastCounter;
  /**
   * The last request's method and status and their counter child: most requests of a route share
   * both, and the key string for `requestsByKey` is then not built (the executor updates these).
   */
  lastCount: { method: string; status: number; counter: CounterChild | undefined };
  /** The backend's promise-less exchange, when nothing else runs on this route (executor.ts). */
  stream: BackendInstance["stream"];
}

export interface Generation {
  config: ResolvedConfig;
  pipelines: CompiledPipeline[];
  tables: Map<string, RouteTable<CompiledRoute>>;
  /** Routes of endpoints that listen on their own (no HTTP route table): they get `serve`d. */
  internal: CompiledRoute[];
}

/** A route a pipeline took in a network's table, with where a clash with it would be reported. */
export interface RouteClaim {
  network: string;
  entry: Omit<RouteEntry<unknown>, "route">;
  pipeline: string;
  endpointName: string;
  /** The pipeline's endpoint entry: file, line and key path of a problem about this route. */
  at: Omit<Problem, "severity" | "message">;
}

/** The problem a route gets when an earlier pipeline's route in the same table claims it. */
export function routeClaimedMessage(
  entry: Omit<RouteEntry<unknown>, "route">,
  network: string,
  by: { pipeline: string; endpointName: string },
): string {
  const key = entry.conditionsKey ? ` (${entry.conditionsKey})` : "";
  return `route ${describe(entry.methods)} ${entry.prefix}${key} on network "${network}" is already claimed by pipeline "${by.pipeline}" (endpoint "${by.endpointName}")`;
}

export function compileGeneration(
  config: ResolvedConfig,
  buildCtx: (name: string) => BuildContext,
  metrics: Metrics,
  locate: (path: (string | number)[]) => { file: string; line?: number; column?: number },
  /** Receives every route added to a table, in order (a check across files replays them). */
  claims?: RouteClaim[],
): { generation: Generation | undefined; problems: Problem[] } {
  const problems: Problem[] = [];
  const fail = (path: (string | number)[], message: string) =>
    problems.push({ severity: "error", ...locate(path), path: displayPath(path), message });

  const instantiate = <T>(table: string, r: ResolvedPlugin): T | undefined => {
    try {
      // The options were checked against this plugin's own schema in resolve.ts.
      const plugin = r.plugin as { create(options: unknown, ctx: BuildContext): unknown };
      return plugin.create(r.options, buildCtx(r.name)) as T;
    } catch (e) {
      fail([table, r.name, "options"], `cannot start: ${(e as Error).message}`);
      return undefined;
    }
  };
  const endpoints = new Map<string, EndpointInstance>();
  for (const [n, r] of config.endpoints) {
    const inst = instantiate<EndpointInstance>("endpoints", r);
    if (inst) endpoints.set(n, inst);
  }
  const backends = new Map<string, BackendInstance>();
  for (const [n, r] of config.backends) {
    const inst = instantiate<BackendInstance>("backends", r);
    if (inst) backends.set(n, inst);
  }
  const middleware = new Map<string, MiddlewareInstance>();
  for (const [n, r] of config.middleware) {
    const inst = instantiate<MiddlewareInstance>("middleware", r);
    if (inst) middleware.set(n, inst);
  }

  const tables = new Map<string, RouteTable<CompiledRoute>>();
  for (const name of config.networks.keys()) tables.set(name, new RouteTable(config.pathNormalization.caseInsensitive));
  const managementPaths = config.management.enabled
    ? [config.management.basePath, "/healthz", "/readyz", "/metrics"]
    : [];

  const pipelines: CompiledPipeline[] = [];
  const internal: CompiledRoute[] = [];
  for (const p of config.pipelines) {
    const mws = (names: string[]) => names.map((n) => middleware.get(n)).filter((m) => m !== undefined);
    const left = mws(p.left);
    const right = mws(p.right);
    const compiled: CompiledPipeline = {
      name: p.name,
      description: p.description,
      networks: p.networks,
      endpoints: p.endpoints,
      backendName: p.backend ?? "",
      backend: p.backend ? backends.get(p.backend) : undefined,
      left: left.flatMap((m) => (m.onRequest ? [m.onRequest.bind(m)] : [])),
      right: right.flatMap((m) => (m.onResponse ? [m.onResponse.bind(m)] : [])),
      middleware: { left: p.left, right: p.right },
    };
    pipelines.push(compiled);

    p.endpoints.forEach((endpointName, i) => {
      const endpoint = endpoints.get(endpointName);
      if (!endpoint) return;
      if (endpoint.serve) {
        internal.push({
          pipeline: compiled,
          endpointName,
          endpoint,
          prefix: "/",
          methods: "*",
          duration: metrics.duration.labels(p.name, endpointName, p.backend ?? ""),
          upstreamDuration: metrics.upstreamDuration.labels(p.name, p.backend ?? ""),
          requestsByKey: new Map(),
          requests: metrics.requests,
          lastCount: { method: "", status: 0, counter: undefined },
          // Its requests come from another protocol: they take executeInternal, never a stream.
          stream: undefined,
        });
      }
      for (const spec of endpoint.routes) {
        const prefix = spec.exact ? normalizeExactPath(spec.prefix) : normalizePrefix(spec.prefix);
        const methods: ReadonlySet<string> | "*" =
          spec.methods === "*" ? "*" : new Set(spec.methods.map((m) => m.toUpperCase()));
        let variants: ReturnType<typeof routeConditions>;
        try {
          variants = routeConditions(spec);
        } catch (e) {
          fail(["endpoints", endpointName, "options"], (e as Error).message);
          continue;
        }
        for (const network of p.networks) {
          const table = tables.get(network);
          if (!table) continue;
          if (network === (config.management.enabled ? config.management.network : undefined)) {
            const hit = managementPaths.find(
              (m) => prefix === m || prefix === "/" || m.startsWith(prefix + "/") || prefix.startsWith(m + "/"),
            );
            if (hit && prefix !== "/") {
              fail(["pipelines", p.name, "endpoints", i], `route ${prefix} on the management network overlaps ${hit}`);
              continue;
            }
          }
          // One table entry per hostname: each competes with the specificity of its own hostname.
          for (const v of variants) {
            const entry = {
              prefix,
              methods,
              exact: spec.exact,
              precedence: spec.precedence,
              methodMismatch404: spec.methodMismatch404,
              ...v,
            };
            const clash = table.conflict(entry);
            if (clash) {
              fail(
                ["pipelines", p.name, "endpoints", i],
                routeClaimedMessage(entry, network, {
                  pipeline: clash.route.pipeline.name,
                  endpointName: clash.route.endpointName,
                }),
              );
              continue;
            }
            if (claims) {
              const path = ["pipelines", p.name, "endpoints", i];
              claims.push({
                network,
                entry,
                pipeline: p.name,
                endpointName,
                at: { ...locate(path), path: displayPath(path) },
              });
            }
            table.add({
              ...entry,
              route: {
                pipeline: compiled,
                endpointName,
                endpoint,
                prefix,
                methods: methods === "*" ? "*" : [...methods],
                duration: metrics.duration.labels(p.name, endpointName, p.backend ?? ""),
                upstreamDuration: metrics.upstreamDuration.labels(p.name, p.backend ?? ""),
                requestsByKey: new Map(),
                requests: metrics.requests,
                lastCount: { method: "", status: 0, counter: undefined },
                stream: streamOf(compiled, endpoint),
              },
            });
          }
        }
      }
    });
  }

  if (problems.length > 0) return { generation: undefined, problems };
  return { generation: { config, pipelines, tables, internal }, problems };
}

/**
 * The backend's `stream` when nothing but the backend runs for this route: no endpoint
 * `onRequest`, no middleware hook on either side (a middleware without hooks, `passthru`, does
 * not count).
 */
function streamOf(p: CompiledPipeline, endpoint: EndpointInstance): BackendInstance["stream"] {
  const b = p.backend;
  if (!b?.stream || endpoint.onRequest || p.left.length > 0 || p.right.length > 0) return undefined;
  return b.stream.bind(b);
}

const describe = (m: ReadonlySet<string> | "*") => (m === "*" ? "(any method)" : [...m].join("|"));
