/**
 * SIGTERM. First `drain_delay_ms` of still serving while /readyz answers 503 and every response
 * closes its connection (request-entry.ts): a load balancer (kube-proxy, once the endpoint is
 * gone) needs that long to stop sending new connections here, and clients holding keep-alive
 * connections (which conntrack keeps pinned to this pod) are moved to another replica one response
 * at a time. Then the listeners stop accepting, idle connections close, and in-flight requests get
 * `shutdown_timeout_ms` to finish before they are cut.
 */
import type { Logger } from "winston";
import type { AccessLog } from "../observability/access-log.js";
import type { Live } from "./generation.js";
import type { ListenerSet } from "./listener-set.js";
import type { SharedResources } from "./resources.js";

export async function drainAndClose(env: {
  live: Live | undefined;
  logger: Logger;
  listeners: ListenerSet;
  resources: SharedResources;
  accessLog: AccessLog;
}): Promise<void> {
  const { live, logger } = env;
  const drainMs = live?.gen.config.drainDelayMs ?? 0;
  if (drainMs > 0) {
    logger.info("not ready; still serving until the drain delay ends", { drain_delay_ms: drainMs });
    await new Promise((r) => setTimeout(r, drainMs));
    logger.info("drain delay over; closing the listeners");
  }
  const timeout = live?.gen.config.shutdownTimeoutMs ?? 30_000;
  const servers = env.listeners.clear().map((l) => l.server);
  await Promise.all(servers.map((s) => s.close(timeout)));
  await env.resources.closeAll();
  await env.accessLog.close();
}
