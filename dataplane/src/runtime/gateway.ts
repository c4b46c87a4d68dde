/**
 * The running data plane: owns the listeners, the live config generation and reloads.
 *
 * A reload builds and validates a whole new generation before anything changes; then every
 * listener it needs is bound beside the old ones (runtime/listener-set.ts), and only when all of
 * them are bound is the generation pointer swapped in one assignment and the old listeners closed.
 * Requests already running keep the generation they started with; its exclusive resources
 * (connection pools) are closed when its last request finishes.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { dirname, isAbsolute, resolve } from "node:path";
import type { Logger } from "winston";
import { loadConfig, type LoadedConfig } from "../config/load.js";
import { resolveConfig, type ListenerSpec } from "../config/resolve.js";
import { formatProblem, hasErrors, sortProblems, type Problem } from "../config/problems.js";
import { ConfigWatcher, digestFile, digests, listFiles, type Digests } from "../config/watch.js";
import { overlayFs, overlayReader, secretsDigest, type ConfigOverlay } from "../config/overlay.js";
import { isShardFile, shardGaps } from "../config/shards.js";
import type { KubeConfigSource } from "../config/kube/source.js";
import type { KubeSourceSpec } from "../config/kube/uri.js";
import { compileGeneration, type CompiledRoute, type Generation } from "../pipeline/compile.js";
import { execute, executeInternal, type ExecutorDeps } from "../pipeline/executor.js";
import { problemType, writeProblem } from "../pipeline/errors.js";
import { PathError, canonicalPath } from "../pipeline/canonical-path.js";
import { requestId } from "../pipeline/trace.js";
import type { RouteTable } from "../pipeline/route-table.js";
import type { Registry } from "../plugins/registry.js";
import { configureLogger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { AccessLog } from "../observability/access-log.js";
import { createManagementApp } from "../management/api.js";
import type { ReloadResult } from "../management/view.js";
import type { ManagementView } from "../management/view.js";
import { SharedResources } from "./resources.js";
import { bindListener } from "./listeners.js";
import { ListenerSet, type ListenerChange } from "./listener-set.js";
import { isLoopbackAddress } from "./loopback.js";
import { dropConnectionNamed, malformedHead } from "./request-guard.js";
import { guardRequest } from "../network/guard.js";

import { buildContextFactory } from "../build-context.js";

export type { ReloadResult } from "../management/view.js";

interface Live {
  gen: Generation;
  hash: string;
  loadedAt: Date;
  files: string[];
  loaded: LoadedConfig;
  keys: Set<string>;
  inflight: number;
  retired: boolean;
  deps: ExecutorDeps;
  /** The management network's bind address resolves to loopback addresses only. */
  managementLoopback: boolean;
  source: "files" | "kubernetes";
  /** secretsDigest of the API revision it was built from ("" from files). */
  secrets: string;
}

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

export class Gateway {
  private live: Live | undefined;
  private readonly draining = new Set<Live>();
  private readonly listeners: ListenerSet;
  private readonly resources = new SharedResources();
  private readonly accessLog: AccessLog;
  private readonly management;
  private readonly startedAt = new Date();
  private lastReload: ReloadResult | undefined;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private watcher: ConfigWatcher | undefined;
  /** Digests of the files the live generation was built from, taken before the build read them. */
  private seen: Digests | undefined;
  /** The newest revision from the API; undefined while the files are the source. */
  private overlay: ConfigOverlay | undefined;
  private kube: KubeConfigSource | undefined;
  private stopping = false;
  private readonly configFile: string;
  /** Requests this process has taken (a group's /admin/info shows it per worker). */
  private served = 0;

  constructor(private readonly opts: GatewayOptions) {
    this.configFile = resolve(opts.configFile);
    // A group's workers share stdout: writes stay within PIPE_BUF so lines never interleave.
    this.accessLog = new AccessLog(process.stdout, opts.group ? 4096 : 0);
    this.management = createManagementApp(this.view(), opts.metrics);
    this.listeners = new ListenerSet(
      (network, spec) =>
        bindListener(spec, (req, res) => this.handle(network, req, res), opts.logger, network, !!opts.group),
      opts.logger,
    );
  }

  /** Loads the config and binds every listener; throws with every problem listed if it cannot. */
  async start(overlay?: ConfigOverlay): Promise<void> {
    // A group's worker starts on the revision the primary has (the files, or the API's newest).
    this.overlay = overlay;
    const r = await this.reload("startup");
    if (!r.ok) throw new Error([r.error ?? "configuration rejected", ...(r.problems ?? [])].join("\n"));
    // A worker of a group does not watch: the primary does, once, and tells every worker.
    if (this.opts.watch !== false && !this.opts.group) {
      this.watcher = new ConfigWatcher({
        dirs: () => this.watchedDirs(),
        files: () => this.watchedFiles(),
        onChange: () => this.onFileChange(),
        pollMs: this.opts.pollMs ?? 2000,
        // Not the files as they are now: one changed since the startup build read it is a change.
        ...(this.seen ? { seen: this.seen } : {}),
      });
    }
    if (this.opts.kubeSource && !this.opts.group) await this.startKubeSource(this.opts.kubeSource);
  }

  /**
   * The files are the source at start and the fallback after; the API, once connected, is the
   * newer of the two (the kubelet writes the same revision up to a minute later, or an older one
   * when edits come quickly), so a file change counts only while the API is not connected.
   */
  private onFileChange(): void {
    if (this.kube?.healthy()) {
      this.opts.logger.debug("config files changed; ignored while the Kubernetes API source is connected");
      return;
    }
    this.overlay = undefined;
    void this.reload("file");
  }

  private async startKubeSource(src: NonNullable<GatewayOptions["kubeSource"]>): Promise<void> {
    // Loaded only here: a data plane on plain files never reads this code.
    const { KubeConfigSource } = await import("../config/kube/source.js");
    const { inClusterConnection, kubeconfigConnection } = await import("../config/kube/api.js");
    const conn = src.kubeconfig ? kubeconfigConnection(src.kubeconfig) : inClusterConnection();
    const dir = resolve(this.configFile, "..");
    const secretDir = src.spec.secretDir ? resolve(src.spec.secretDir) : undefined;
    this.kube = new KubeConfigSource(
      src.spec,
      conn,
      (rev) => {
        this.overlay = { dir, files: rev.files, secrets: rev.secrets, ...(secretDir ? { secretDir } : {}) };
        void this.reload("kubernetes");
      },
      this.opts.logger,
    );
    this.kube.start();
  }

  /**
   * A group's worker: reload what the primary read from the API (undefined: the files). The
   * primary does the choosing between files and API that onFileChange does for a single process.
   */
  reloadWith(trigger: string, overlay: ConfigOverlay | undefined): Promise<ReloadResult> {
    this.overlay = overlay;
    return this.reload(trigger);
  }

  /** Serialised: a reload requested during another one runs after it, against the newest files. */
  reload(trigger: string): Promise<ReloadResult> {
    const next = this.reloadChain.then(() => this.doReload(trigger));
    this.reloadChain = next.catch(() => undefined);
    return next;
  }

  private async doReload(trigger: string): Promise<ReloadResult> {
    const { logger, metrics } = this.opts;
    const at = new Date();
    if (this.stopping) return { ok: false, trigger, at: at.toISOString(), error: "shutting down" };
    const overlay = this.overlay;
    // Digested before anything is read, so a file written while this reload runs still counts as
    // changed afterwards (under load a reload takes seconds: a peer's CA landing in the trust
    // bundle then must not be marked seen unserved).
    const before = digests(this.watchedFiles());
    // A sharded tree the kubelet has only partly updated (shards are separate ConfigMaps) would
    // serve without the pipelines of the shards it lacks: wait for the next swap instead. (The
    // API source assembles only whole sets, so its overlay needs no check.)
    const gaps = overlay ? [] : shardGaps(dirname(this.configFile));
    if (gaps.length) {
      logger.info("config shards not all at the manifest's revision yet; serving the current config", {
        trigger,
        waiting_for: gaps.slice(0, 5),
      });
      return { ok: false, trigger, at: at.toISOString(), error: `waiting for config shards: ${gaps.join(", ")}` };
    }
    const loaded = loadConfig(this.configFile, overlay ? overlayFs(overlay) : undefined);
    // Files this config names that the live one did not (the first start, a network added):
    // digested now, still before the build reads them.
    const pending = new Map(
      this.watchedFiles(loaded, harmonyPaths(loaded)).map((f) => [f, before.get(f) ?? digestFile(f)]),
    );
    const live = this.live;
    // What is served already is not rebuilt: the kubelet's copy of a revision the API brought, or
    // the API's answer after a reconnect. An API revision also compares the Secret it read. (A
    // file change under a config from files still rebuilds: transform specs are not in the hash.)
    const same =
      live?.hash === loaded.hash &&
      ((trigger === "file" && live.source === "kubernetes") ||
        (trigger === "kubernetes" && live.secrets === secretsDigest(overlay)));
    if (live && same) {
      logger.debug("config unchanged; nothing to reload", { trigger, hash: live.hash });
      return { ok: true, trigger, at: at.toISOString(), hash: live.hash, changed: false, source: live.source };
    }
    const built = this.build(loaded, overlay);
    if (!built.ok) {
      await this.resources.retain(this.keysInUse());
      const problems = built.problems.filter((p) => p.severity === "error").map(formatProblem);
      const result: ReloadResult = {
        ok: false,
        trigger,
        at: at.toISOString(),
        problems,
        error: `configuration rejected: ${problems.length} error(s)`,
        source: overlay ? "kubernetes" : "files",
      };
      this.recordReload(result);
      logger.error("config rejected; the previous config keeps serving", { trigger, problems });
      return result;
    }
    for (const p of built.problems) logger.warn("config warning", { problem: formatProblem(p) });

    const prev = this.live;
    const next = built.live;
    let change: ListenerChange;
    try {
      change = await this.bindListeners(next);
    } catch (e) {
      await this.resources.retain(this.keysInUse());
      const result: ReloadResult = {
        ok: false,
        trigger,
        at: at.toISOString(),
        error: `listener failed: ${(e as Error).message}`,
      };
      this.recordReload(result);
      logger.error("config rejected: a listener could not be bound; the previous config keeps serving", {
        trigger,
        error: (e as Error).message,
      });
      return result;
    }
    change.commit();
    this.live = next; // the swap
    // Inter-gateway listeners take the identity and bundle this build validated (a rotation).
    for (const l of this.listeners.values()) {
      const n = l.spec.harmony && next.gen.config.harmonyNetworks.get(l.spec.harmony.network);
      if (n) l.server.setTls?.({ cert: n.cert, key: n.key, ca: n.ca });
    }
    // Endpoints with listeners of their own (DIMSE) now run requests through this generation.
    for (const route of next.gen.internal) route.endpoint.serve?.((req) => executeInternal(route, req, next.deps));
    const logFile = next.gen.config.logFile ? this.resolvePath(next.gen.config.logFile) : undefined;
    configureLogger(logger, next.gen.config.logLevel, logFile);
    this.accessLog.setFile(logFile);
    if (prev) this.retire(prev);
    // Only the files the live generation watches (a network that failed to load has none).
    this.seen = new Map(this.watchedFiles().map((f) => [f, pending.get(f) ?? before.get(f) ?? digestFile(f)]));
    this.watcher?.resync(this.seen);
    metrics.setConfigHash(next.hash);
    metrics.reloadTimestamp.set(Date.now() / 1000);
    const result: ReloadResult = {
      ok: true,
      trigger,
      at: at.toISOString(),
      hash: next.hash,
      changed: prev?.hash !== next.hash,
      source: next.source,
    };
    this.recordReload(result);
    logger.info("config loaded", {
      trigger,
      hash: next.hash,
      pipelines: next.gen.pipelines.length,
      changed: result.changed,
      source: next.source,
    });
    return result;
  }

  private build(
    loaded: LoadedConfig,
    overlay: ConfigOverlay | undefined,
  ): { ok: true; live: Live; problems: Problem[] } | { ok: false; problems: Problem[] } {
    const reader = overlay ? overlayReader(overlay) : undefined;
    const buildCtx = buildContextFactory(loaded, this.opts.logger, this.resources, reader, this.opts.metrics);
    const { config, problems } = resolveConfig(loaded, this.opts.registry, buildCtx);
    if (!config) return { ok: false, problems: sortProblems(problems, loaded.mainFile) };
    // Compiled even when resolving found errors, so route clashes are reported in the same pass.
    const { result, keys } = this.resources.collect(() =>
      compileGeneration(config, buildCtx, this.opts.metrics, loaded.locate),
    );
    if (!result.generation || hasErrors(problems)) {
      return { ok: false, problems: sortProblems([...problems, ...result.problems], loaded.mainFile) };
    }
    const live: Live = {
      gen: result.generation,
      hash: loaded.hash,
      loadedAt: new Date(),
      files: loaded.sources.map((s) => s.file),
      loaded,
      keys,
      inflight: 0,
      retired: false,
      deps: undefined as unknown as ExecutorDeps,
      managementLoopback: false,
      source: overlay ? "kubernetes" : "files",
      secrets: secretsDigest(overlay),
    };
    live.deps = {
      logger: this.opts.logger,
      accessLog: config.accessLog ? this.accessLog : undefined,
      bodyLimit: config.bodyLimit,
      bodyTimeout: config.bodyTimeout,
      jsonDepthLimit: config.jsonDepthLimit,
      parseLimits: config.parseLimits,
      pathNormalization: config.pathNormalization,
      onStart: () => {
        live.inflight++;
        this.opts.metrics.inflightNow++;
      },
      onEnd: () => {
        live.inflight--;
        this.opts.metrics.inflightNow--;
        if (live.retired && live.inflight === 0) this.release(live);
      },
    };
    return { ok: true, live, problems };
  }

  private retire(old: Live): void {
    old.retired = true;
    if (old.inflight === 0) this.release(old);
    else this.draining.add(old);
  }

  private release(old: Live): void {
    this.draining.delete(old);
    void this.resources.retain(this.keysInUse());
  }

  private keysInUse(): Set<string> {
    const keys = new Set<string>(this.live?.keys ?? []);
    for (const d of this.draining) for (const k of d.keys) keys.add(k);
    return keys;
  }

  private recordReload(r: ReloadResult): void {
    this.lastReload = r;
    this.opts.metrics.reloads.inc({ result: r.ok ? "success" : "failure", trigger: r.trigger });
    this.opts.metrics.reloadSuccessful.set(r.ok ? 1 : 0);
  }

  // ---- listeners ---------------------------------------------------------------------------

  /**
   * Binds everything `next` listens on while the current generation keeps serving: the endpoints
   * with listeners of their own (DIMSE), then the networks' HTTP listeners. Rejects, with the old
   * listeners serving as before, when any of them cannot be bound.
   */
  private async bindListeners(next: Live): Promise<ListenerChange> {
    const config = next.gen.config;
    // In a group one worker binds the DIMSE listeners: a second bind of their port would fail.
    for (const route of this.opts.group?.dimse === false ? [] : next.gen.internal) {
      try {
        await route.endpoint.listen?.();
      } catch (e) {
        throw new Error(`endpoint "${route.endpointName}": ${(e as Error).message}`);
      }
    }
    const wanted = new Map<string, ListenerSpec>();
    // A worker of a group binds the port the group's first worker got for a port-0 listener.
    const ports = this.opts.group?.ports() ?? {};
    for (const [name, spec] of config.networks) {
      if (spec) wanted.set(name, spec.port === 0 && ports[name] ? { ...spec, port: ports[name] } : spec);
    }
    const mg = config.management;
    const mgSpec = mg.enabled ? wanted.get(mg.network) : undefined;
    next.managementLoopback = mgSpec ? await isLoopbackAddress(mgSpec.address) : true;
    return this.listeners.stage(wanted, config.shutdownTimeoutMs);
  }

  /** Configured listeners that are not bound right now (readiness), as "name (address:port)". */
  private unbound(live: Live): string[] {
    const out: string[] = [];
    for (const [name, spec] of live.gen.config.networks) {
      if (spec && !this.listeners.get(name)?.server.address())
        out.push(`network "${name}" (${spec.address}:${spec.port})`);
    }
    for (const route of this.opts.group?.dimse === false ? [] : live.gen.internal) {
      if (route.endpoint.listening?.() === false) out.push(`endpoint "${route.endpointName}"`);
    }
    return out;
  }

  private handle(network: string, req: IncomingMessage, res: ServerResponse): void {
    const live = this.live;
    this.served++;
    if (!live) {
      // Listeners are bound before the first generation goes live; a request in that gap waits for nothing.
      writeProblem(res, { status: 503, title: "Service Unavailable", detail: "starting" }, requestId(undefined));
      return;
    }
    if (this.stopping) closeAfterResponse(req, res);
    const malformed = malformedHead(req);
    if (malformed) {
      this.opts.metrics.unrouted.inc({ network, status: "400" });
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
        this.opts.metrics.unrouted.inc({ network, status: "400" });
        writeProblem(
          res,
          { status: 400, title: "Bad Request", type: problemType("bad-path"), detail: e.message },
          requestId(req.headers["x-request-id"]),
        );
        return;
      }
    }
    const harmony = this.listeners.get(network)?.spec.harmony;
    if (harmony) {
      // An inter-gateway listener: verified peer identity and network policy before anything else.
      const net = live.gen.config.harmonyNetworks.get(harmony.network);
      const id = requestId(req.headers["x-request-id"]);
      if (!net) {
        writeProblem(res, { status: 503, title: "Service Unavailable", detail: "network not loaded" }, id);
        return;
      }
      if (!guardRequest(net, req, res, path, id, this.opts.logger)) return;
    }
    const search = q < 0 ? "" : url.slice(q);
    const m =
      path.charCodeAt(0) === 47 ? table?.match(req.method ?? "GET", path, { headers: req.headers, search }) : undefined;
    if (m && "route" in m) {
      void execute(m.route, req, res, path, search, live.deps);
      return;
    }
    const mg = live.gen.config.management;
    if (mg.enabled && mg.network === network && !m) {
      this.management(req, res);
      return;
    }
    const id = requestId(req.headers["x-request-id"]);
    const status = m ? 405 : 404;
    this.opts.metrics.unrouted.inc({ network, status: String(status) });
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

  /** Addresses actually bound, by network (port 0 in config becomes a real port). */
  boundPorts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const l of this.listeners.values()) {
      const a = l.server.address();
      if (typeof a === "object" && a) out[l.network] = a.port;
    }
    return out;
  }

  // ---- shutdown ----------------------------------------------------------------------------

  /**
   * SIGTERM. First `drain_delay_ms` of still serving while /readyz answers 503 and every response
   * closes its connection: a load balancer (kube-proxy, once the endpoint is gone) needs that long
   * to stop sending new connections here, and clients holding keep-alive connections (which
   * conntrack keeps pinned to this pod) are moved to another replica one response at a time. Then
   * the listeners stop accepting, idle connections close, and in-flight requests get
   * `shutdown_timeout_ms` to finish before they are cut.
   */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.watcher?.close();
    this.kube?.close();
    const drainMs = this.live?.gen.config.drainDelayMs ?? 0;
    if (drainMs > 0) {
      this.opts.logger.info("not ready; still serving until the drain delay ends", { drain_delay_ms: drainMs });
      await new Promise((r) => setTimeout(r, drainMs));
      this.opts.logger.info("drain delay over; closing the listeners");
    }
    const timeout = this.live?.gen.config.shutdownTimeoutMs ?? 30_000;
    const servers = this.listeners.clear().map((l) => l.server);
    await Promise.all(servers.map((s) => s.close(timeout)));
    await this.resources.closeAll();
    await this.accessLog.close();
  }

  // ---- views for management ----------------------------------------------------------------

  /** This process's readiness: a group's /readyz combines every worker's. */
  localReadiness(): Readiness {
    if (this.stopping) return { ready: false, reason: "shutting down" };
    if (!this.live) return { ready: false, reason: "no config loaded" };
    const unbound = this.unbound(this.live);
    if (unbound.length)
      return { ready: false, reason: `not listening: ${unbound.join(", ")}`, configHash: this.live.hash };
    return { ready: true, configHash: this.live.hash };
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
      requests: this.served,
      last_reload: this.lastReload,
      watch: { dirs: this.watchedDirs(), files: this.watchedFiles() },
      // The primary's watcher must count as seen what this worker read, not the files once it is done.
      seen: [...(this.seen ?? [])],
    };
  }

  private watchedDirs(): string[] {
    const l = this.live?.loaded;
    if (!l) return [];
    return [...new Set([l.baseDir, l.pipelinesDir, l.transformsDir, l.meshDir, ...this.harmonyFiles().map(dirname)])];
  }

  /**
   * What counts as the config on disk: the main file, every *.toml the loader scans, and every file
   * in the transforms directory (specs). Not logs or anything else that shares a directory.
   */
  private watchedFiles(l = this.live?.loaded, harmony = this.harmonyFiles()): string[] {
    if (!l) return [this.configFile];
    const toml = (n: string) => n.endsWith(".toml");
    return [
      l.mainFile,
      ...listFiles(l.pipelinesDir, toml),
      ...listFiles(l.transformsDir, () => true),
      ...listFiles(l.meshDir, toml),
      // A shard set completing changes only these (the TOML may already be there, refused as partial).
      ...listFiles(l.baseDir, isShardFile),
      ...harmony,
    ];
  }

  /** Identity, trust bundle and directory of every harmony network: a change rebuilds the generation. */
  private harmonyFiles(): string[] {
    const out: string[] = [];
    for (const n of this.live?.gen.config.harmonyNetworks.values() ?? [])
      out.push(n.certPath, n.keyPath, n.bundlePath, n.directoryPath);
    return out;
  }

  private resolvePath(p: string): string {
    return isAbsolute(p) ? p : resolve(this.live?.loaded.baseDir ?? ".", p);
  }

  private view(): ManagementView {
    return {
      basePath: () => (this.live?.gen.config.management.enabled ? this.live.gen.config.management.basePath : "/admin"),
      token: () => (this.live?.gen.config.management.enabled ? this.live.gen.config.management.token : undefined),
      loopbackOnly: () => this.live?.managementLoopback ?? true,
      hostPolicy: () => {
        const mg = this.live?.gen.config.management;
        return { loopback: this.live?.managementLoopback ?? true, allowed: mg?.enabled ? mg.allowedHosts : [] };
      },
      readiness: () => this.opts.group?.readiness() ?? this.localReadiness(),
      ...(this.opts.group ? { metrics: () => this.opts.group!.metrics(), group: () => this.opts.group!.group() } : {}),
      info: () => {
        const live = this.live!;
        return {
          id: live.gen.config.id,
          version: this.opts.version,
          started_at: this.startedAt.toISOString(),
          uptime_seconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
          pid: process.pid,
          node: process.version,
          config: {
            hash: live.hash,
            loaded_at: live.loadedAt.toISOString(),
            files: live.files,
            source: live.source,
            ...(this.kube ? { kubernetes: this.kube.status() } : {}),
          },
          last_reload: this.lastReload,
        };
      },
      pipelines: () =>
        this.live!.gen.pipelines.map((p) => ({
          name: p.name,
          description: p.description,
          networks: p.networks,
          endpoints: p.endpoints,
          backend: p.backendName || null,
          middleware: p.middleware,
        })),
      routes: () => {
        const out: unknown[] = [];
        for (const [network, table] of this.live!.gen.tables) {
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
      document: () => this.live!.gen.config.document,
      reload: (trigger) => this.opts.group?.reload(trigger) ?? this.reload(trigger),
      logger: () => this.opts.logger,
    };
  }
}

/** The files `[harmony_networks.*]` of a loaded config names, resolved as the build resolves them. */
function harmonyPaths(loaded: LoadedConfig): string[] {
  const sections = loaded.raw.harmony_networks;
  if (!sections || typeof sections !== "object") return [];
  const out: string[] = [];
  for (const s of Object.values(sections as Record<string, Record<string, unknown>>)) {
    for (const key of ["cert_path", "key_path", "trust_bundle_path", "directory_path"]) {
      const p = s?.[key];
      if (typeof p === "string") out.push(isAbsolute(p) ? p : resolve(loaded.baseDir, p));
    }
  }
  return out;
}

/** server.close() waits for every connection; idle keep-alive ones are closed now, busy ones after `graceMs`. */

/**
 * While shutting down: this response ends its connection, so the client's next request opens a new
 * one, which the load balancer sends to a replica that stays. HTTP/1.1 by `Connection: close`;
 * HTTP/2 has no such header (Node drops it with a warning) and gets a graceful GOAWAY instead: the
 * streams already open finish, new ones go to a new connection.
 */
function closeAfterResponse(req: IncomingMessage, res: ServerResponse): void {
  if (req.httpVersionMajor < 2) {
    res.setHeader("connection", "close");
    return;
  }
  const session = (req as unknown as Http2ServerRequest).stream?.session;
  if (session && !session.closed) session.close();
}
