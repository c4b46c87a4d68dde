/** What management (/admin, /readyz) sees of the running gateway, built from its parts. */
import type { ManagementView } from "../management/view.js";
import type { GatewayOptions, Readiness, ReloadResult } from "./gateway-types.js";
import type { Live } from "./generation.js";
import type { ListenerSet } from "./listener-set.js";

/** This process's readiness: a group's /readyz combines every worker's. */
export function localReadiness(
  stopping: boolean,
  live: Live | undefined,
  listeners: ListenerSet,
  dimse: boolean,
): Readiness {
  if (stopping) return { ready: false, reason: "shutting down" };
  if (!live) return { ready: false, reason: "no config loaded" };
  // Configured listeners that are not bound as configured right now, as "name (address:port)".
  const unbound = listeners.unbound().map(({ network, spec }) => `network "${network}" (${spec.address}:${spec.port})`);
  for (const route of dimse ? live.gen.internal : []) {
    if (route.endpoint.listening?.() === false) unbound.push(`endpoint "${route.endpointName}"`);
  }
  if (unbound.length) return { ready: false, reason: `not listening: ${unbound.join(", ")}`, configHash: live.hash };
  return { ready: true, configHash: live.hash };
}

export function managementView(env: {
  opts: GatewayOptions;
  startedAt: Date;
  live: () => Live | undefined;
  lastReload: () => ReloadResult | undefined;
  kubeStatus: () => object | undefined;
  readiness: () => Readiness;
  reload: (trigger: string) => Promise<ReloadResult>;
}): ManagementView {
  const { opts, startedAt } = env;
  return {
    basePath: () => {
      const live = env.live();
      return live?.gen.config.management.enabled ? live.gen.config.management.basePath : "/admin";
    },
    token: () => {
      const live = env.live();
      return live?.gen.config.management.enabled ? live.gen.config.management.token : undefined;
    },
    loopbackOnly: () => env.live()?.managementLoopback ?? true,
    hostPolicy: () => {
      const live = env.live();
      const mg = live?.gen.config.management;
      return { loopback: live?.managementLoopback ?? true, allowed: mg?.enabled ? mg.allowedHosts : [] };
    },
    readiness: () => opts.group?.readiness() ?? env.readiness(),
    ...(opts.group ? { metrics: () => opts.group!.metrics(), group: () => opts.group!.group() } : {}),
    info: () => {
      const live = env.live()!;
      const kubernetes = env.kubeStatus();
      return {
        id: live.gen.config.id,
        version: opts.version,
        started_at: startedAt.toISOString(),
        uptime_seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
        pid: process.pid,
        node: process.version,
        config: {
          hash: live.hash,
          loaded_at: live.loadedAt.toISOString(),
          files: live.files,
          source: live.source,
          ...(kubernetes ? { kubernetes } : {}),
        },
        last_reload: env.lastReload(),
      };
    },
    pipelines: () =>
      env.live()!.gen.pipelines.map((p) => ({
        name: p.name,
        description: p.description,
        networks: p.networks,
        endpoints: p.endpoints,
        backend: p.backendName || null,
        middleware: p.middleware,
      })),
    routes: () => {
      const out: unknown[] = [];
      for (const [network, table] of env.live()!.gen.tables) {
        for (const e of table.list()) {
          out.push({
            network,
            path: e.prefix,
            methods: e.route.methods === "*" ? ["*"] : e.route.methods,
            pipeline: e.route.pipeline.name,
            endpoint: e.route.endpointName,
            backend: e.route.pipeline.backendName || null,
            // Gateway API matches, shown only where set (one entry per hostname).
            ...(e.exact ? { path_match: "exact" } : {}),
            ...(e.conditionsKey ? { match: e.conditionsKey } : {}),
            ...(e.precedence ? { precedence: e.precedence } : {}),
          });
        }
      }
      return out.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    },
    document: () => env.live()!.gen.config.document,
    reload: (trigger) => opts.group?.reload(trigger) ?? env.reload(trigger),
    logger: () => opts.logger,
  };
}
