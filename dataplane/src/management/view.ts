/** What the management API may see of the running gateway; keeps api.ts free of runtime internals. */
import type { Logger } from "winston";
import type { HostPolicy } from "./hosts.js";

/** The outcome of one reload, as /admin/reload, /admin/info and the workers' IPC report it. */
export interface ReloadResult {
  ok: boolean;
  trigger: string;
  at: string;
  hash?: string;
  changed?: boolean;
  problems?: string[];
  error?: string;
  /** Where the config came from: the mounted files, or the Kubernetes API (--config-source). */
  source?: "files" | "kubernetes";
}

export interface ManagementView {
  basePath(): string;
  token(): string | undefined;
  loopbackOnly(): boolean;
  /** What the Host and Origin checks allow (management/hosts.ts). */
  hostPolicy(): HostPolicy;
  /** A group of workers answers for all of them, so asynchronously (runtime/workers/). */
  readiness():
    | { ready: boolean; reason?: string; configHash?: string }
    | Promise<{ ready: boolean; reason?: string; configHash?: string }>;
  /** A group's metrics, aggregated over its workers; unset: this process's registry. */
  metrics?(): Promise<string>;
  /** A group's workers and the primary's API source, for /admin/info; unset in a single process. */
  group?(): Promise<{ workers: unknown[]; kubernetes?: object }>;
  info(): {
    id: string;
    version: string;
    started_at: string;
    uptime_seconds: number;
    config: {
      hash: string;
      loaded_at: string;
      files: string[];
      source: "files" | "kubernetes";
      /** --config-source: connected, version, last_error (config/kube/source.ts SourceStatus). */
      kubernetes?: object;
    };
    last_reload: ReloadResult | undefined;
  } & Record<string, unknown>;
  pipelines(): unknown[];
  routes(): unknown[];
  document(): unknown;
  reload(trigger: string): Promise<ReloadResult>;
  logger(): Logger;
}
