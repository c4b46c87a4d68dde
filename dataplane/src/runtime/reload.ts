/**
 * The reload transaction. A reload builds and validates a whole new generation before anything
 * changes; then every listener it needs is bound beside the old ones (listener-set.ts), and the
 * generation pointer is swapped in one assignment while the replaced listeners retire. Reloads are
 * serialised: one requested during another runs after it, against the newest files.
 *
 * A listener that cannot be bound (its port taken) does not hold back the rest of the config: the
 * new generation goes live, the listener's last good one keeps serving, the reload reports the
 * problem (file, key) as not ok, and the bind is retried with backoff (bind-retry.ts) until it
 * succeeds. At start-up there is nothing to keep, so it fails the start.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { loadConfig, type LoadedConfig } from "../config/load.js";
import type { ListenerSpec } from "../config/resolve.js";
import { displayPath, formatProblem } from "../config/problems.js";
import { digestFile, digests, type Digests } from "../config/watch.js";
import { overlayFs, secretsDigest, type ConfigOverlay } from "../config/overlay.js";
import { shardGaps } from "../config/shards.js";
import { executeInternal } from "../pipeline/executor.js";
import { configureLogger } from "../observability/logger.js";
import type { AccessLog } from "../observability/access-log.js";
import { BindRetry } from "./bind-retry.js";
import { harmonyFiles, harmonyPaths, watchedFiles } from "./config-files.js";
import type { GatewayOptions, ReloadResult } from "./gateway-types.js";
import type { Generations, Live } from "./generation.js";
import type { BindFailure, ListenerChange, ListenerSet } from "./listener-set.js";
import { isLoopbackAddress } from "./loopback.js";

export interface ReloadEnv {
  opts: GatewayOptions;
  configFile: string;
  generations: Generations;
  listeners: ListenerSet;
  accessLog: AccessLog;
  /** The API revision to build from; undefined: the files. */
  overlay(): ConfigOverlay | undefined;
  stopping(): boolean;
  /** The live generation's files as they were before its build read them (the watcher's baseline). */
  onSeen(seen: Digests): void;
}

export class Reloader {
  lastReload: ReloadResult | undefined;
  /** Digests of the files the live generation was built from, taken before the build read them. */
  seen: Digests | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly retry: BindRetry;

  constructor(private readonly env: ReloadEnv) {
    this.retry = new BindRetry(() => this.serialised(() => this.rebind()), env.opts.logger, env.opts.metrics);
  }

  reload(trigger: string): Promise<ReloadResult> {
    return this.serialised(() => this.run(trigger));
  }

  /** Shutting down: no more bind retries. */
  close(): void {
    this.retry.stop();
  }

  /** The files the live generation counts as its config (config-files.ts). */
  files(): string[] {
    const live = this.env.generations.current;
    return watchedFiles(this.env.configFile, live?.loaded, harmonyFiles(live));
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async run(trigger: string): Promise<ReloadResult> {
    const { logger, metrics } = this.env.opts;
    const { generations } = this.env;
    const at = new Date();
    if (this.env.stopping()) return { ok: false, trigger, at: at.toISOString(), error: "shutting down" };
    const overlay = this.env.overlay();
    // Digested before anything is read, so a file written while this reload runs still counts as
    // changed afterwards (under load a reload takes seconds: a peer's CA landing in the trust
    // bundle then must not be marked seen unserved).
    const before = digests(this.files());
    // A sharded tree the kubelet has only partly updated (shards are separate ConfigMaps) would
    // serve without the pipelines of the shards it lacks: wait for the next swap instead. (The
    // API source assembles only whole sets, so its overlay needs no check.)
    const gaps = overlay ? [] : shardGaps(dirname(this.env.configFile));
    if (gaps.length) {
      logger.info("config shards not all at the manifest's revision yet; serving the current config", {
        trigger,
        waiting_for: gaps.slice(0, 5),
      });
      return { ok: false, trigger, at: at.toISOString(), error: `waiting for config shards: ${gaps.join(", ")}` };
    }
    const loaded = loadConfig(this.env.configFile, overlay ? overlayFs(overlay) : undefined);
    // Files this config names that the live one did not (the first start, a network added):
    // digested now, still before the build reads them.
    const pending = new Map(
      watchedFiles(this.env.configFile, loaded, harmonyPaths(loaded)).map((f) => [f, before.get(f) ?? digestFile(f)]),
    );
    const live = generations.current;
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
    let built: ReturnType<Generations["build"]>;
    try {
      built = generations.build(loaded, overlay);
    } catch (e) {
      // A bug in a resolver or plugin, not in the config: still a rejected reload, never a dead process.
      logger.error("config build failed unexpectedly", { trigger, error: (e as Error).stack ?? String(e) });
      const message = `internal error while building this config (please report it): ${(e as Error).message}`;
      built = { ok: false, problems: [{ severity: "error", file: loaded.mainFile, path: "", message }] };
    }
    if (!built.ok) {
      await generations.prune();
      const problems = built.problems.filter((p) => p.severity === "error").map(formatProblem);
      const result: ReloadResult = {
        ok: false,
        trigger,
        at: at.toISOString(),
        problems,
        error: `configuration rejected: ${problems.length} error(s)`,
        source: overlay ? "kubernetes" : "files",
      };
      this.record(result);
      logger.error("config rejected; the previous config keeps serving", { trigger, problems });
      return result;
    }
    for (const p of built.problems) logger.warn("config warning", { problem: formatProblem(p) });

    const next = built.live;
    let change: ListenerChange;
    try {
      // The first load has no listener to keep serving: a listener that cannot bind fails it.
      change = await this.bindListeners(next, live ? "reload" : "start");
    } catch (e) {
      await generations.prune();
      const result: ReloadResult = {
        ok: false,
        trigger,
        at: at.toISOString(),
        error: `listener failed: ${(e as Error).message}`,
      };
      this.record(result);
      logger.error("config rejected: a listener could not be bound; the previous config keeps serving", {
        trigger,
        error: (e as Error).message,
      });
      return result;
    }
    const unbound = change.commit();
    const prev = generations.swap(next);
    this.listenersTakeIdentity(next);
    // Endpoints with listeners of their own (DIMSE) now run requests through this generation.
    for (const route of next.gen.internal) route.endpoint.serve?.((req) => executeInternal(route, req, next.deps));
    const logFile = next.gen.config.logFile ? resolvePath(next, next.gen.config.logFile) : undefined;
    configureLogger(logger, next.gen.config.logLevel, logFile);
    this.env.accessLog.setFile(logFile);
    // Only the files the live generation watches (a network that failed to load has none).
    this.seen = new Map(this.files().map((f) => [f, pending.get(f) ?? before.get(f) ?? digestFile(f)]));
    this.env.onSeen(this.seen);
    metrics.setGcMetric(next.gen.config.gcMetric !== false);
    metrics.setConfigHash(next.hash);
    metrics.reloadTimestamp.set(Date.now() / 1000);
    const problems = unbound.map((f) => this.problemOf(loaded, f));
    const result: ReloadResult = {
      ok: unbound.length === 0,
      trigger,
      at: at.toISOString(),
      hash: next.hash,
      changed: prev?.hash !== next.hash,
      source: next.source,
      ...(unbound.length
        ? { problems, error: `listener not bound: ${unbound.map((f) => f.error.message).join("; ")}` }
        : {}),
    };
    this.record(result);
    logger.info("config loaded", {
      trigger,
      hash: next.hash,
      pipelines: next.gen.pipelines.length,
      changed: result.changed,
      source: next.source,
    });
    if (unbound.length)
      logger.error("a listener could not be bound; its last good listener keeps serving and the bind is retried", {
        trigger,
        problems,
      });
    this.retry.update(unbound, true);
    return result;
  }

  /** The bind retry: the listeners the last reload asked for, staged again. */
  private async rebind(): Promise<BindFailure[]> {
    const live = this.env.generations.current;
    if (this.env.stopping() || !live) return [];
    const change = await this.env.listeners.stage(
      this.env.listeners.wanted(),
      live.gen.config.shutdownTimeoutMs,
      "retry",
    );
    const unbound = change.commit();
    this.listenersTakeIdentity(live);
    // The reload that left them unbound is complete now.
    if (!unbound.length && this.lastReload?.ok === false && this.lastReload.hash === live.hash) {
      this.record({
        ok: true,
        trigger: "bind-retry",
        at: new Date().toISOString(),
        hash: live.hash,
        changed: false,
        source: live.source,
      });
    }
    return unbound;
  }

  /**
   * Binds everything `next` listens on while the current generation keeps serving: the endpoints
   * with listeners of their own (DIMSE), then the networks' HTTP listeners. Rejects, with the old
   * listeners serving as before, when a DIMSE listener (at start-up, any) cannot be bound.
   */
  private async bindListeners(next: Live, mode: "start" | "reload"): Promise<ListenerChange> {
    const { group } = this.env.opts;
    const config = next.gen.config;
    // In a group one worker binds the DIMSE listeners: a second bind of their port would fail.
    for (const route of group?.dimse === false ? [] : next.gen.internal) {
      try {
        await route.endpoint.listen?.();
      } catch (e) {
        throw new Error(`endpoint "${route.endpointName}": ${(e as Error).message}`);
      }
    }
    const wanted = new Map<string, ListenerSpec>();
    // A worker of a group binds the port the group's first worker got for a port-0 listener.
    const ports = group?.ports() ?? {};
    for (const [name, spec] of config.networks) {
      if (spec) wanted.set(name, spec.port === 0 && ports[name] ? { ...spec, port: ports[name] } : spec);
    }
    const mg = config.management;
    const mgSpec = mg.enabled ? wanted.get(mg.network) : undefined;
    next.managementLoopback = mgSpec ? await isLoopbackAddress(mgSpec.address) : true;
    return this.env.listeners.stage(wanted, config.shutdownTimeoutMs, mode);
  }

  /** Inter-gateway listeners take the identity and bundle this build validated (a rotation). */
  private listenersTakeIdentity(live: Live): void {
    for (const l of this.env.listeners.values()) {
      const n = l.spec.harmony && live.gen.config.harmonyNetworks.get(l.spec.harmony.network);
      if (n) l.server.setTls?.({ cert: n.cert, key: n.key, ca: n.ca });
    }
  }

  /** A listener left unbound, located at its bind_port, with what serves meanwhile. */
  private problemOf(loaded: LoadedConfig, f: BindFailure): string {
    const key = ["network", f.network, "http", "bind_port"];
    const kept = this.env.listeners.get(f.network);
    const port = kept?.server.address()?.port ?? kept?.spec.port;
    const meanwhile = kept
      ? `its last good listener (${kept.spec.address}:${port}) keeps serving`
      : "nothing serves this network";
    return formatProblem({
      severity: "error",
      ...loaded.locate(key),
      path: displayPath(key),
      message: `${f.error.message}; ${meanwhile} until the bind, retried with backoff, succeeds`,
    });
  }

  private record(r: ReloadResult): void {
    this.lastReload = r;
    this.env.opts.metrics.reloads.inc({ result: r.ok ? "success" : "failure", trigger: r.trigger });
    this.env.opts.metrics.reloadSuccessful.set(r.ok ? 1 : 0);
  }
}

function resolvePath(live: Live, p: string): string {
  return isAbsolute(p) ? p : resolve(live.loaded.baseDir, p);
}
