/**
 * The running data plane: owns the listeners, the live config generation and reloads.
 *
 * A reload builds and validates a whole new generation before anything changes; then listeners
 * whose network section changed are rebound, and the generation pointer is swapped in one
 * assignment. Requests already running keep the generation they started with; its exclusive
 * resources (connection pools) are closed when its last request finishes.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { isAbsolute, resolve } from "node:path";
import type { Logger } from "winston";
import { loadConfig, type LoadedConfig } from "../config/load.js";
import { resolveConfig, type ListenerSpec, type ResolvedConfig } from "../config/resolve.js";
import { formatProblem, hasErrors, sortProblems, type Problem } from "../config/problems.js";
import { ConfigWatcher, listFiles } from "../config/watch.js";
import { compileGeneration, type CompiledRoute, type Generation } from "../pipeline/compile.js";
import { execute, executeInternal, type ExecutorDeps } from "../pipeline/executor.js";
import { writeProblem } from "../pipeline/errors.js";
import { requestId } from "../pipeline/trace.js";
import type { RouteTable } from "../pipeline/route-table.js";
import type { Registry } from "../plugins/registry.js";
import { configureLogger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { AccessLog } from "../observability/access-log.js";
import { createManagementApp } from "../management/api.js";
import type { ManagementView } from "../management/view.js";
import { SharedResources } from "./resources.js";
import { bindListener, type BoundListener } from "./listeners.js";

/** A path segment that is "." or "..", spelled plainly or percent-encoded. */
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$)/i;
import { buildContextFactory } from "../build-context.js";

export interface ReloadResult {
  ok: boolean;
  trigger: string;
  at: string;
  hash?: string;
  changed?: boolean;
  problems?: string[];
  error?: string;
}

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
}

interface Listener {
  network: string;
  spec: ListenerSpec;
  fingerprint: string;
  server: BoundListener;
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
}

export class Gateway {
  private live: Live | undefined;
  private readonly draining = new Set<Live>();
  private readonly listeners = new Map<string, Listener>();
  private readonly resources = new SharedResources();
  private readonly accessLog = new AccessLog();
  private readonly management;
  private readonly startedAt = new Date();
  private lastReload: ReloadResult | undefined;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private watcher: ConfigWatcher | undefined;
  private stopping = false;
  private readonly configFile: string;

  constructor(private readonly opts: GatewayOptions) {
    this.configFile = resolve(opts.configFile);
    this.management = createManagementApp(this.view(), opts.metrics);
  }

  /** Loads the config and binds every listener; throws with every problem listed if it cannot. */
  async start(): Promise<void> {
    const r = await this.reload("startup");
    if (!r.ok) throw new Error([r.error ?? "configuration rejected", ...(r.problems ?? [])].join("\n"));
    if (this.opts.watch !== false) {
      this.watcher = new ConfigWatcher({
        dirs: () => this.watchedDirs(),
        files: () => this.watchedFiles(),
        onChange: () => void this.reload("file"),
        pollMs: this.opts.pollMs ?? 2000,
      });
    }
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
    const built = this.build();
    if (!built.ok) {
      await this.resources.retain(this.keysInUse());
      const problems = built.problems.filter((p) => p.severity === "error").map(formatProblem);
      const result: ReloadResult = {
        ok: false,
        trigger,
        at: at.toISOString(),
        problems,
        error: `configuration rejected: ${problems.length} error(s)`,
      };
      this.recordReload(result);
      logger.error("config rejected; the previous config keeps serving", { trigger, problems });
      return result;
    }
    for (const p of built.problems) logger.warn("config warning", { problem: formatProblem(p) });

    const prev = this.live;
    const next = built.live;
    try {
      await this.reconcileListeners(next.gen.config);
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
    this.live = next; // the swap
    // Endpoints with listeners of their own (DIMSE) now run requests through this generation.
    for (const route of next.gen.internal) route.endpoint.serve?.((req) => executeInternal(route, req, next.deps));
    const logFile = next.gen.config.logFile ? this.resolvePath(next.gen.config.logFile) : undefined;
    configureLogger(logger, next.gen.config.logLevel, logFile);
    this.accessLog.setFile(logFile);
    if (prev) this.retire(prev);
    this.watcher?.resync();
    metrics.setConfigHash(next.hash);
    metrics.reloadTimestamp.set(Date.now() / 1000);
    const result: ReloadResult = {
      ok: true,
      trigger,
      at: at.toISOString(),
      hash: next.hash,
      changed: prev?.hash !== next.hash,
    };
    this.recordReload(result);
    logger.info("config loaded", {
      trigger,
      hash: next.hash,
      pipelines: next.gen.pipelines.length,
      changed: result.changed,
    });
    return result;
  }

  private build(): { ok: true; live: Live; problems: Problem[] } | { ok: false; problems: Problem[] } {
    const loaded = loadConfig(this.configFile);
    const buildCtx = buildContextFactory(loaded, this.opts.logger, this.resources);
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
    };
    live.deps = {
      logger: this.opts.logger,
      accessLog: config.accessLog ? this.accessLog : undefined,
      bodyLimit: config.bodyLimit,
      bodyTimeout: config.bodyTimeout,
      jsonDepthLimit: config.jsonDepthLimit,
      parseLimits: config.parseLimits,
      onStart: () => {
        live.inflight++;
        this.opts.metrics.inflight.inc();
      },
      onEnd: () => {
        live.inflight--;
        this.opts.metrics.inflight.dec();
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

  private async reconcileListeners(config: ResolvedConfig): Promise<void> {
    const wanted = new Map<string, ListenerSpec>();
    for (const [name, spec] of config.networks) if (spec) wanted.set(name, spec);
    const fp = (s: ListenerSpec) =>
      JSON.stringify([
        s.address,
        s.port,
        s.certPath,
        s.keyPath,
        s.http2,
        s.certReloadMs,
        s.forceHttpsPort,
        s.headersTimeoutMs,
      ]);

    // Close listeners that go away or change first, so a changed network can take over its port.
    const toOpen: [string, ListenerSpec][] = [];
    for (const [name, l] of this.listeners) {
      const spec = wanted.get(name);
      if (!spec || fp(spec) !== l.fingerprint) {
        this.listeners.delete(name);
        // Requests already on the old socket may finish; the port itself is released right away.
        void l.server.close(config.shutdownTimeoutMs);
        this.opts.logger.info("listener closed", { network: name, address: l.spec.address, port: l.spec.port });
      }
    }
    for (const [name, spec] of wanted) if (!this.listeners.has(name)) toOpen.push([name, spec]);
    const opened: Listener[] = [];
    try {
      for (const [name, spec] of toOpen) {
        const server = await this.listen(name, spec);
        const l = { network: name, spec, fingerprint: fp(spec), server };
        opened.push(l);
        this.listeners.set(name, l);
        const addr = server.address();
        this.opts.logger.info("listener started", {
          network: name,
          address: spec.address,
          port: typeof addr === "object" && addr ? addr.port : spec.port,
        });
      }
    } catch (e) {
      for (const l of opened) {
        this.listeners.delete(l.network);
        await l.server.close(0);
      }
      throw e;
    }
  }

  /** Binds, retrying briefly while a just-closed listener still holds the port. */
  private async listen(network: string, spec: ListenerSpec): Promise<BoundListener> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.listenOnce(network, spec);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 20) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private listenOnce(network: string, spec: ListenerSpec): Promise<BoundListener> {
    return bindListener(spec, (req, res) => this.handle(network, req, res), this.opts.logger, network);
  }

  private handle(network: string, req: IncomingMessage, res: ServerResponse): void {
    const live = this.live!;
    if (this.stopping) res.setHeader("connection", "close");
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const table: RouteTable<CompiledRoute> | undefined = live.gen.tables.get(network);
    if (DOT_SEGMENT.test(path)) {
      // "/public/../admin" would match /public here and reach /admin upstream; refuse it.
      this.opts.metrics.unrouted.inc({ network, status: "400" });
      writeProblem(
        res,
        { status: 400, title: "Bad Request", detail: "dot segments (. and ..) are not accepted in paths" },
        requestId(req.headers["x-request-id"]),
      );
      return;
    }
    const m = path.charCodeAt(0) === 47 ? table?.match(req.method ?? "GET", path) : undefined;
    if (m && "route" in m) {
      void execute(m.route, req, res, path, q < 0 ? "" : url.slice(q), live.deps);
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
    for (const [name, l] of this.listeners) {
      const a = l.server.address();
      if (typeof a === "object" && a) out[name] = a.port;
    }
    return out;
  }

  // ---- shutdown ----------------------------------------------------------------------------

  /** Stops accepting, lets in-flight requests finish (bounded), then closes everything. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.watcher?.close();
    const timeout = this.live?.gen.config.shutdownTimeoutMs ?? 30_000;
    const servers = [...this.listeners.values()].map((l) => l.server);
    this.listeners.clear();
    await Promise.all(servers.map((s) => s.close(timeout)));
    await this.resources.closeAll();
    await this.accessLog.close();
  }

  // ---- views for management ----------------------------------------------------------------

  private watchedDirs(): string[] {
    const l = this.live?.loaded;
    if (!l) return [];
    return [...new Set([l.baseDir, l.pipelinesDir, l.transformsDir])];
  }

  /**
   * What counts as the config on disk: the main file, every *.toml the loader scans, and every file
   * in the transforms directory (specs). Not logs or anything else that shares a directory.
   */
  private watchedFiles(): string[] {
    const l = this.live?.loaded;
    if (!l) return [this.configFile];
    const toml = (n: string) => n.endsWith(".toml");
    return [l.mainFile, ...listFiles(l.pipelinesDir, toml), ...listFiles(l.transformsDir, () => true)];
  }

  private resolvePath(p: string): string {
    return isAbsolute(p) ? p : resolve(this.live?.loaded.baseDir ?? ".", p);
  }

  private view(): ManagementView {
    return {
      basePath: () => (this.live?.gen.config.management.enabled ? this.live.gen.config.management.basePath : "/admin"),
      token: () => (this.live?.gen.config.management.enabled ? this.live.gen.config.management.token : undefined),
      loopbackOnly: () => {
        const mg = this.live?.gen.config.management;
        if (!mg?.enabled) return true;
        const spec = this.live!.gen.config.networks.get(mg.network);
        return !!spec && /^(127\.|::1$|localhost$)/.test(spec.address);
      },
      readiness: () => {
        if (this.stopping) return { ready: false, reason: "shutting down" };
        if (!this.live) return { ready: false, reason: "no config loaded" };
        return { ready: true, configHash: this.live.hash };
      },
      info: () => {
        const live = this.live!;
        return {
          id: live.gen.config.id,
          version: this.opts.version,
          started_at: this.startedAt.toISOString(),
          uptime_seconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
          pid: process.pid,
          node: process.version,
          config: { hash: live.hash, loaded_at: live.loadedAt.toISOString(), files: live.files },
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
            });
          }
        }
        return out.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
      },
      document: () => this.live!.gen.config.document,
      reload: (trigger) => this.reload(trigger),
      logger: () => this.opts.logger,
    };
  }
}

/** server.close() waits for every connection; idle keep-alive ones are closed now, busy ones after `graceMs`. */
