#!/usr/bin/env node
/** harmony-operator: watches Harmony resources and renders them into data-plane config. */
import { createServer } from "node:http";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import winston from "winston";
import { kubeClients } from "./provider/kube.js";
import { parseNamespaces } from "./provider/cache.js";
import { ApiHealth } from "./provider/api-health.js";
import { Controller } from "./runner/controller.js";
import { GatewayApiController } from "./gatewayapi/controller.js";
import { LeaderElector } from "./leader/lease.js";
import { OperatorMetrics } from "./metrics.js";
import { SidecarWebhook } from "./webhook/server.js";
import { WEBHOOK_FLAGS, WEBHOOK_HELP, webhookSettings } from "./webhook/flags.js";

const HELP = `Usage: harmony-operator [options]

  --kubeconfig <file>       Kubeconfig (default: in-cluster, then $KUBECONFIG)
  --watch-namespaces <list> Comma-separated namespaces to watch (default: all; env WATCH_NAMESPACES)
  --relist-interval <dur>   Full relist of every watch, e.g. 90s or 5m (default 5m)
  --secret-recheck-interval <dur>
                            How often gateways that use Secrets re-read them to pick up new values
                            (default 60s; Secrets are read on demand, never listed or watched)
  --render-quiet-period <dur>
                            A gateway is rendered once its events (pipelines, endpoints arriving or
                            edited) pause this long (default 250ms)...
  --render-max-delay <dur>  ...or this long after the first of them, if they keep coming (default
                            2s): a stream of arrivals is one render per period, not one per event
  --new-endpoint-grace <dur> How long a new HarmonyEndpoint no pipeline uses yet waits for one
                            before its status says Unused (default 5s; one status write, not two,
                            when an endpoint and its pipeline are applied together)
  --api-check-interval <dur> How often /readyz re-checks API access (default 10s)
  --leader-elect <bool>     Run leader election on a Lease (default true)
  --lease-namespace <ns>    Namespace of the Lease (default: $POD_NAMESPACE or default)
  --health-port <port>      /healthz, /readyz and /metrics (default 8081; 0 = ephemeral)
  --log-level <level>       error|warn|info|debug (default info; env LOG_LEVEL)
  --manage-workloads <bool> Run gateway Deployments and Services (default true)
  --image <ref>             Default data-plane image
  --identity <id>           Leader-election identity (default: hostname + pid)
  --network-namespace <ns>  Namespace of HarmonyNetwork CA Secrets, peering tokens and imports
                            (default: $POD_NAMESPACE or default)
  --cluster-name <name>     This cluster's name in HarmonyNetwork exports (default: cluster)
  --networks <bool>         Serve HarmonyNetworks (default true). They are cluster-scoped: even with
                            --watch-namespaces the operator needs get/list/watch on harmonynetworks
                            cluster-wide; false runs without (no networks)
  --gateway-api <bool>      Serve Gateway API GatewayClasses with controllerName
                            harmony.runbeam.io/gateway-controller, their Gateways and HTTPRoutes
                            (default false; needs the Gateway API CRDs and a cluster-wide watch)
${WEBHOOK_HELP}`;

async function main(): Promise<number> {
  const { values: a } = parseArgs({
    options: {
      kubeconfig: { type: "string" },
      "watch-namespaces": { type: "string" },
      "relist-interval": { type: "string", default: "5m" },
      "secret-recheck-interval": { type: "string", default: "60s" },
      "api-check-interval": { type: "string", default: "10s" },
      "render-quiet-period": { type: "string", default: "250ms" },
      "render-max-delay": { type: "string", default: "2s" },
      "new-endpoint-grace": { type: "string", default: "5s" },
      "leader-elect": { type: "string", default: "true" },
      "lease-namespace": { type: "string" },
      "health-port": { type: "string", default: "8081" },
      "log-level": { type: "string" },
      "manage-workloads": { type: "string", default: "true" },
      image: { type: "string" },
      identity: { type: "string" },
      "network-namespace": { type: "string" },
      "cluster-name": { type: "string" },
      networks: { type: "string", default: "true" },
      "gateway-api": { type: "string", default: "false" },
      ...WEBHOOK_FLAGS,
      help: { type: "boolean", short: "h" },
    },
  });
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const logger = winston.createLogger({
    level: a["log-level"] ?? process.env.LOG_LEVEL ?? "info",
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { component: "operator" },
    transports: [new winston.transports.Console()],
  });
  const namespaces = parseNamespaces(a["watch-namespaces"] ?? process.env.WATCH_NAMESPACES);
  const relistMs = parseDuration(a["relist-interval"]);
  if (relistMs === undefined || relistMs < 1000) {
    process.stderr.write(
      `harmony-operator: --relist-interval: "${a["relist-interval"]}" is not a duration of 1s or more\n`,
    );
    return 2;
  }
  const secretRecheckMs = parseDuration(a["secret-recheck-interval"]);
  if (secretRecheckMs === undefined || secretRecheckMs < 1000) {
    process.stderr.write(
      `harmony-operator: --secret-recheck-interval: "${a["secret-recheck-interval"]}" is not a duration of 1s or more\n`,
    );
    return 2;
  }
  const apiCheckMs = parseDuration(a["api-check-interval"]);
  if (apiCheckMs === undefined || apiCheckMs < 100) {
    process.stderr.write(
      `harmony-operator: --api-check-interval: "${a["api-check-interval"]}" is not a duration of 100ms or more\n`,
    );
    return 2;
  }
  const quietMs = parseDuration(a["render-quiet-period"]);
  const maxDelayMs = parseDuration(a["render-max-delay"]);
  if (quietMs === undefined || maxDelayMs === undefined) {
    process.stderr.write(
      `harmony-operator: --render-quiet-period "${a["render-quiet-period"]}" and --render-max-delay "${a["render-max-delay"]}" must be durations\n`,
    );
    return 2;
  }
  const newEndpointGraceMs = parseDuration(a["new-endpoint-grace"]);
  if (newEndpointGraceMs === undefined) {
    process.stderr.write(`harmony-operator: --new-endpoint-grace: "${a["new-endpoint-grace"]}" is not a duration\n`);
    return 2;
  }
  let webhookFlags;
  try {
    webhookFlags = webhookSettings(a, process.env.POD_NAMESPACE ?? "default");
  } catch (e) {
    process.stderr.write(`harmony-operator: ${(e as Error).message}\n`);
    return 2;
  }
  const gatewayApi = a["gateway-api"] === "true";
  if (gatewayApi && namespaces.length) {
    process.stderr.write("harmony-operator: --gateway-api needs a cluster-wide watch (no --watch-namespaces)\n");
    return 2;
  }
  const kube = kubeClients(a.kubeconfig);
  const metrics = new OperatorMetrics();
  const identity = a.identity ?? `${hostname()}-${process.pid}`;
  let controller: Controller | undefined;
  let gwController: GatewayApiController | undefined;
  const startController = async () => {
    controller = new Controller({
      kube,
      logger,
      metrics,
      namespaces,
      relistMs,
      secretRecheckMs,
      manageWorkloads: a["manage-workloads"] !== "false",
      defaultImage: a.image,
      networkNamespace: a["network-namespace"] ?? process.env.POD_NAMESPACE ?? "default",
      clusterName: a["cluster-name"],
      networks: a.networks !== "false",
      coalesce: { quietMs, maxDelayMs },
      newEndpointGraceMs,
    });
    await controller.start();
    if (gatewayApi) {
      gwController = new GatewayApiController({
        kube,
        logger,
        metrics,
        manageWorkloads: a["manage-workloads"] !== "false",
        defaultImage: a.image,
        relistMs,
        secretRecheckMs,
      });
      await gwController.start();
    }
    metrics.leader.set(1);
  };
  const stopController = async () => {
    metrics.leader.set(0);
    await controller?.stop();
    await gwController?.stop();
    controller = undefined;
    gwController = undefined;
  };
  const elector =
    a["leader-elect"] !== "false"
      ? new LeaderElector(
          kube.kc,
          {
            namespace: a["lease-namespace"] ?? process.env.POD_NAMESPACE ?? "default",
            name: "harmony-operator",
            identity,
          },
          logger,
          { onStartedLeading: startController, onStoppedLeading: stopController },
        )
      : undefined;

  const webhook = webhookFlags
    ? new SidecarWebhook({ ...webhookFlags, kube, logger, defaultImage: a.image, registry: metrics.registry })
    : undefined;

  const api = new ApiHealth(kube.kc, { intervalMs: apiCheckMs, namespace: namespaces[0] }, logger);

  const health = createServer((req, res) => {
    if (req.url === "/healthz") return void res.end("ok");
    if (req.url === "/readyz") {
      // Ready = can do the job now: the API answers and allows it, the leader's caches have
      // listed, and the webhook (when on) serves. The body says which is missing.
      const problem =
        api.problem ??
        ((controller && !controller.synced) || (gwController && !gwController.synced)
          ? "informers not synced yet"
          : undefined) ??
        (webhook && !webhook.ready ? "webhook not serving" : undefined);
      if (problem) res.statusCode = 503;
      return void res.end(problem ?? "ok");
    }
    if (req.url === "/metrics") {
      void metrics.registry.metrics().then((text) => {
        res.setHeader("content-type", metrics.registry.contentType);
        res.end(text);
      });
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => health.listen(Number(a["health-port"]), r));
  const port = (health.address() as { port: number }).port;
  logger.info("Operator started", {
    identity,
    health_port: port,
    leader_election: Boolean(elector),
    watch_namespaces: namespaces.length ? namespaces : "all",
  });

  await api.start();
  // Every replica serves the webhook, leader or not (see webhook/server.ts).
  await webhook?.start();

  if (elector) elector.start();
  else await startController();

  return new Promise((done) => {
    const stop = (signal: string) => {
      logger.info("Stopping", { signal });
      void (async () => {
        if (elector) await elector.stop();
        else await stopController();
        await webhook?.stop();
        api.stop();
        health.close();
        done(0);
      })();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

/** "1500ms", "90s", "5m", "1h" → milliseconds. */
function parseDuration(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim());
  if (!m) return undefined;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`harmony-operator: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
