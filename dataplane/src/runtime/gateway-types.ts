/** The gateway's options and what it tells a group of workers (types only: every runtime module may import them). */
import type { Logger } from "winston";
import type { KubeSourceSpec } from "../config/kube/uri.js";
import type { ReloadResult } from "../management/view.js";
import type { Registry } from "../plugins/registry.js";
import type { Metrics } from "../observability/metrics.js";

export type { ReloadResult } from "../management/view.js";

export interface GatewayOptions {
  configFile: string;
  registry: Registry;
  logger: Logger;
  metrics: Metrics;
  version: string;
  /** Poll interval of the file watcher (0 disables polling; events still work). */
  pollMs?: number;
  watch?: boolean;
  /** Also watch the config through the Kubernetes API (config/kube/source.ts). */
  kubeSource?: { spec: KubeSourceSpec; kubeconfig?: string };
  /** Set when this process is one worker of a group (runtime/workers/): the group decides reloads. */
  group?: GroupHooks;
}

export interface Readiness {
  ready: boolean;
  reason?: string;
  configHash?: string;
}

/**
 * What a worker of a group (proxy.workers > 1) asks of the primary, and what the group decides for
 * it. The primary watches the config and tells every worker when to reload; management answers
 * for the whole group.
 */
export interface GroupHooks {
  /** This worker binds the DIMSE listeners (one worker of the group does: they have ports of their own). */
  dimse: boolean;
  /** The ports the group's port-0 listeners got, by network: every worker binds the same one. */
  ports(): Record<string, number>;
  reload(trigger: string): Promise<ReloadResult>;
  readiness(): Promise<Readiness>;
  metrics(): Promise<string>;
  group(): Promise<{ workers: unknown[]; kubernetes?: object }>;
}
