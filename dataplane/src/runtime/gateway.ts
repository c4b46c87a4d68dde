/**
 * The running data plane, put together: where the config comes from (files, the Kubernetes API, or
 * a group's primary), the reload transaction (reload.ts), the listeners (listener-set.ts), the
 * request entry (request-entry.ts), management's view (management-view.ts) and shutdown
 * (shutdown.ts). Each of those holds its own job; this file only wires them and decides when to
 * reload.
 */
import { resolve } from "node:path";
import type { ConfigOverlay } from "../config/overlay.js";
import { ConfigSources } from "./config-sources.js";
import { AccessLog } from "../observability/access-log.js";
import { createManagementApp } from "../management/api.js";
import type { GatewayOptions, Readiness, ReloadResult } from "./gateway-types.js";
import { watchedDirs } from "./config-files.js";
import { Generations } from "./generation.js";
import { prepareListener } from "./listeners.js";
import { ListenerSet } from "./listener-set.js";
import { localReadiness, managementView } from "./management-view.js";
import { Reloader } from "./reload.js";
import { RequestEntry } from "./request-entry.js";
import { SharedResources } from "./resources.js";
import { drainAndClose } from "./shutdown.js";

export type { GatewayOptions, GroupHooks, Readiness, ReloadResult } from "./gateway-types.js";

export class Gateway {
  private readonly generations: Generations;
  private readonly listeners: ListenerSet;
  private readonly resources = new SharedResources();
  private readonly accessLog: AccessLog;
  private readonly reloader: Reloader;
  private readonly entry: RequestEntry;
  private readonly startedAt = new Date();
  private readonly sources: ConfigSources;
  private stopping = false;
  private readonly configFile: string;

  constructor(private readonly opts: GatewayOptions) {
    const { logger, metrics, registry } = opts;
    this.configFile = resolve(opts.configFile);
    this.sources = new ConfigSources({
      configFile: this.configFile,
      logger,
      reload: (trigger) => void this.reload(trigger),
    });
    // A group's workers share stdout: writes stay within PIPE_BUF so lines never interleave.
    this.accessLog = new AccessLog(process.stdout, opts.group ? 4096 : 0);
    this.generations = new Generations({
      registry,
      logger,
      metrics,
      resources: this.resources,
      accessLog: this.accessLog,
    });
    const management = createManagementApp(
      managementView({
        opts,
        startedAt: this.startedAt,
        live: () => this.generations.current,
        lastReload: () => this.reloader.lastReload,
        kubeStatus: () => this.sources.kubeStatus(),
        readiness: () => this.localReadiness(),
        reload: (trigger) => this.reload(trigger),
      }),
      metrics,
    );
    this.entry = new RequestEntry({
      generations: this.generations,
      logger,
      metrics,
      management,
      stopping: () => this.stopping,
    });
    this.listeners = new ListenerSet(
      (network, spec) =>
        prepareListener(spec, (req, res) => this.entry.handle(network, req, res), logger, network, {
          serve: (req, res, closeAfter) => this.entry.serveFast(network, req, res, closeAfter),
          handedOff: () => metrics.http1Handoffs.inc({ network }),
        }),
      // A worker of a group: each worker binds the port itself, the kernel spreads connections.
      !!opts.group,
      logger,
    );
    this.reloader = new Reloader({
      opts,
      configFile: this.configFile,
      generations: this.generations,
      listeners: this.listeners,
      accessLog: this.accessLog,
      overlay: () => this.sources.overlay,
      stopping: () => this.stopping,
      onSeen: (seen) => this.sources.resync(seen),
    });
  }

  /** Loads the config and binds every listener; throws with every problem listed if it cannot. */
  async start(overlay?: ConfigOverlay): Promise<void> {
    // A group's worker starts on the revision the primary has (the files, or the API's newest).
    this.sources.overlay = overlay;
    const r = await this.reload("startup");
    if (!r.ok) throw new Error([r.error ?? "configuration rejected", ...(r.problems ?? [])].join("\n"));
    // A worker of a group does not watch: the primary does, once, and tells every worker.
    if (this.opts.watch !== false && !this.opts.group) {
      const seen = this.reloader.seen;
      this.sources.watchFiles({
        dirs: () => watchedDirs(this.generations.current),
        files: () => this.reloader.files(),
        pollMs: this.opts.pollMs ?? 2000,
        // Not the files as they are now: one changed since the startup build read it is a change.
        ...(seen ? { seen } : {}),
      });
    }
    if (this.opts.kubeSource && !this.opts.group) await this.sources.followKubernetes(this.opts.kubeSource);
  }

  /**
   * A group's worker: reload what the primary read from the API (undefined: the files). The
   * primary does the choosing between files and API that onFileChange does for a single process.
   */
  reloadWith(trigger: string, overlay: ConfigOverlay | undefined): Promise<ReloadResult> {
    this.sources.overlay = overlay;
    return this.reload(trigger);
  }

  /** Serialised: a reload requested during another one runs after it, against the newest files. */
  reload(trigger: string): Promise<ReloadResult> {
    return this.reloader.reload(trigger);
  }

  /** Addresses actually bound, by network (port 0 in config becomes a real port). */
  boundPorts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const l of this.listeners.values()) {
      const a = l.server.address();
      if (typeof a === "object" && a) out[l.network] = a.port;
    }
    return out;
  }

  /** SIGTERM: see shutdown.ts. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.sources.close();
    this.reloader.close();
    await drainAndClose({
      live: this.generations.current,
      logger: this.opts.logger,
      listeners: this.listeners,
      resources: this.resources,
      accessLog: this.accessLog,
    });
  }

  /** This process's readiness: a group's /readyz combines every worker's. */
  localReadiness(): Readiness {
    return localReadiness(this.stopping, this.generations.current, this.listeners, this.opts.group?.dimse !== false);
  }

  /** What a worker reports to its group's primary. */
  workerState(): {
    pid: number;
    readiness: Readiness;
    requests: number;
    last_reload: ReloadResult | undefined;
    watch: { dirs: string[]; files: string[] };
    seen: [string, string][];
  } {
    return {
      pid: process.pid,
      readiness: this.localReadiness(),
      requests: this.entry.served,
      last_reload: this.reloader.lastReload,
      watch: { dirs: watchedDirs(this.generations.current), files: this.reloader.files() },
      // The primary's watcher must count as seen what this worker read, not the files once it is done.
      seen: [...(this.reloader.seen ?? [])],
    };
  }
}
