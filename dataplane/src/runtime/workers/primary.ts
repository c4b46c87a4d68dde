/**
 * The primary of a group (proxy.workers > 1): forks the workers, restarts one that dies, and is
 * the single place that watches the config (files, and the Kubernetes API with --config-source)
 * and answers management questions for the group.
 *
 * Why SO_REUSEPORT and not node:cluster's shared listeners: with cluster's default round-robin the
 * primary accepts every connection and passes it to a worker over IPC, so the primary is on the
 * data path and its core is the ceiling (bench/README.md, "Workers", has the measurement). With
 * reusePort each worker binds the port itself and the kernel spreads new connections over the
 * sockets; the primary never sees a connection. It also keeps a worker's listener life cycle (a
 * reload rebinding a port, runtime/listener-set.ts) inside the worker: cluster's shared handles
 * refuse a second listen on one port from the same worker.
 *
 * DIMSE listeners are bound by worker 1 only (their protocol state is per association, so one
 * process serves all of them; a second bind of their port would fail): a worker restarted in
 * slot 1 binds them again. A reload goes to worker 1 first, whose ports (for port-0 listeners) the
 * others then bind, then to the rest; each worker builds and validates the config itself, so a
 * config one refuses the others refuse too, and all keep their last good one.
 */
import cluster, { type Worker } from "node:cluster";
import client, { AggregatorRegistry } from "prom-client";
import type { Logger } from "winston";
import { ConfigSources } from "../config-sources.js";
import type { GatewayOptions, Readiness, ReloadResult } from "../gateway.js";
import { groupReadiness, groupReload, type SlotReport, type WorkerReload } from "./combine.js";
import { Calls, isHarmony, toWire, type ToPrimary, type ToWorker, type WorkerState } from "./ipc.js";

export interface GroupOptions {
  configFile: string;
  workers: number;
  shutdownTimeoutMs: number;
  logger: Logger;
  pollMs: number;
  watch: boolean;
  kubeSource?: GatewayOptions["kubeSource"];
}

interface Slot {
  index: number;
  worker?: Worker;
  state?: WorkerState;
  startedAt: number;
  /** Deaths in a row that came soon after a start: the restart waits longer each time. */
  quickDeaths: number;
  restarts: number;
  waiting?: { resolve: () => void; reject: (e: Error) => void };
}

const STATE_TIMEOUT_MS = 5_000;
/** A reload builds a whole config generation; on a loaded machine that can take a while. */
const RELOAD_TIMEOUT_MS = 60_000;
/** A worker that lived this long before dying is restarted at once. */
const QUICK_DEATH_MS = 10_000;
const MAX_RESTART_DELAY_MS = 10_000;

export class WorkerGroup {
  private readonly slots: Slot[];
  private readonly calls = new Calls();
  /** The ports of the group's listeners, from the worker that reloaded first (port 0 made real). */
  private ports: Record<string, number> = {};
  private watchList: WorkerState["watch"] = { dirs: [], files: [] };
  private readonly sources: ConfigSources;
  private starting = true;
  private stopping = false;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private readonly aggregator = new AggregatorRegistry();
  private readonly own = new client.Registry();
  private readonly restartCount = new client.Counter({
    name: "harmony_worker_restarts_total",
    help: "Workers of the group (proxy.workers) that died and were started again.",
    registers: [this.own],
  });
  private exited: (() => void) | undefined;
  /** Workers that said hello before worker 1 had started: they wait for its ports. */
  private readonly held: Worker[] = [];

  constructor(private readonly opts: GroupOptions) {
    this.sources = new ConfigSources({
      configFile: opts.configFile,
      logger: opts.logger,
      reload: (trigger) => void this.reload(trigger),
    });
    this.slots = Array.from({ length: opts.workers }, (_, index) => ({
      index,
      startedAt: 0,
      quickDeaths: 0,
      restarts: 0,
    }));
    new client.Gauge({
      name: "harmony_workers",
      help: "Worker processes the data plane runs (proxy.workers).",
      registers: [this.own],
    }).set(opts.workers);
  }

  /**
   * Starts worker 1, then the others on its ports; rejects when any of them cannot start. All are
   * forked at once, so the others load their code while worker 1 starts; they get their config
   * (and worker 1's ports) when it has.
   */
  async start(): Promise<Record<string, number>> {
    cluster.on("message", (w, m) => this.onMessage(w, m));
    cluster.on("exit", (w, code, signal) => this.onExit(w, code, signal));
    const first = this.fork(this.slots[0]!);
    const rest = this.slots.slice(1).map((s) => this.fork(s));
    // Settled here too, so a failure of worker 1 does not leave the others' rejections unhandled.
    const others = Promise.allSettled(rest);
    await first;
    this.ports = { ...this.slots[0]!.state!.ports };
    for (const w of this.held.splice(0)) this.init(w);
    for (const r of await others) if (r.status === "rejected") throw r.reason as Error;
    this.starting = false;
    if (this.opts.watch) {
      this.sources.watchFiles({
        dirs: () => this.watchList.dirs,
        files: () => this.watchList.files,
        seen: new Map(this.slots[0]!.state!.seen),
        pollMs: this.opts.pollMs,
      });
    }
    if (this.opts.kubeSource) await this.sources.followKubernetes(this.opts.kubeSource);
    return this.ports;
  }

  pids(): number[] {
    return this.slots.flatMap((s) => (s.worker?.process.pid ? [s.worker.process.pid] : []));
  }

  private fork(slot: Slot): Promise<void> {
    const worker = cluster.fork({ HARMONY_WORKER_SLOT: String(slot.index) });
    slot.worker = worker;
    slot.state = undefined;
    slot.startedAt = Date.now();
    return new Promise<void>((resolveP, reject) => (slot.waiting = { resolve: resolveP, reject }));
  }

  private slotOf(w: Worker): Slot | undefined {
    return this.slots.find((s) => s.worker === w);
  }

  private send(w: Worker, m: ToWorker): void {
    if (w.isConnected()) w.send(m);
  }

  private onMessage(w: Worker, m: unknown): void {
    if (!isHarmony<ToPrimary>(m)) return;
    const slot = this.slotOf(w);
    if (!slot) return;
    switch (m.t) {
      case "harmony:hello":
        if (this.starting && slot.index > 0 && !this.slots[0]!.state) this.held.push(w);
        else this.init(w);
        return;
      case "harmony:started":
        slot.state = m.state;
        if (slot.index === 0 || this.watchList.files.length === 0) this.watchList = m.state.watch;
        if (!this.starting) this.opts.logger.info("worker started again", { worker: slot.index + 1, pid: m.state.pid });
        slot.waiting?.resolve();
        slot.waiting = undefined;
        return;
      case "harmony:answer":
        this.calls.answer(m);
        return;
      case "harmony:ask":
        this.answer(w, m.id, m.what === "reload" ? this.reload(m.trigger ?? "api") : this.question(m.what));
        return;
    }
  }

  private init(w: Worker): void {
    this.send(w, { t: "harmony:init", ports: this.ports, overlay: toWire(this.sources.overlay) });
  }

  private question(what: "readiness" | "metrics" | "group"): Promise<unknown> {
    if (what === "readiness") return this.readiness();
    if (what === "metrics") return this.metrics();
    return this.workerList().then((workers) => {
      const kubernetes = this.sources.kubeStatus();
      return { workers, ...(kubernetes ? { kubernetes } : {}) };
    });
  }

  private answer(w: Worker, id: number, p: Promise<unknown>): void {
    p.then(
      (value) => this.send(w, { t: "harmony:answer", id, value }),
      (e: unknown) => this.send(w, { t: "harmony:answer", id, error: (e as Error).message }),
    );
  }

  private onExit(w: Worker, code: number | null, signal: string | null): void {
    const slot = this.slotOf(w);
    if (!slot) return;
    slot.worker = undefined;
    slot.state = undefined;
    this.calls.failPeer(w, `worker ${slot.index + 1} exited`);
    const how = signal ? `signal ${signal}` : `code ${String(code)}`;
    slot.waiting?.reject(new Error(`worker ${slot.index + 1} exited during start-up (${how})`));
    slot.waiting = undefined;
    if (this.stopping) {
      if (this.slots.every((s) => !s.worker)) this.exited?.();
      return;
    }
    if (this.starting) return;
    const lived = Date.now() - slot.startedAt;
    slot.quickDeaths = lived < QUICK_DEATH_MS ? slot.quickDeaths + 1 : 0;
    const delay = slot.quickDeaths ? Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** slot.quickDeaths) : 0;
    slot.restarts++;
    this.restartCount.inc();
    this.opts.logger.error("worker exited; starting another", {
      worker: slot.index + 1,
      pid: w.process.pid,
      exit: how,
      restart_in_ms: delay,
    });
    setTimeout(() => {
      if (this.stopping) return;
      // A worker that cannot start (the files on disk now hold a config it refuses) is retried.
      this.fork(slot).catch((e: unknown) =>
        this.opts.logger.error("worker did not start", { worker: slot.index + 1, error: (e as Error).message }),
      );
    }, delay).unref();
  }

  // ---- config -------------------------------------------------------------------------------

  /** Serialised, like a single process's reloads. */
  reload(trigger: string): Promise<ReloadResult> {
    const next = this.reloadChain.then(() => this.reloadAll(trigger));
    this.reloadChain = next.catch(() => undefined);
    return next;
  }

  private async reloadAll(trigger: string): Promise<ReloadResult> {
    const at = new Date();
    if (this.stopping) return { ok: false, trigger, at: at.toISOString(), error: "shutting down" };
    // Workers still starting load the newest config themselves.
    const up = this.slots.filter((s) => s.worker && s.state);
    const overlay = toWire(this.sources.overlay);
    const one = async (s: Slot): Promise<WorkerReload> => {
      const w = s.worker!;
      try {
        const v = await this.calls.call<{ result: ReloadResult; state: WorkerState }>(
          w,
          (id) =>
            this.send(w, { t: "harmony:reload", id, trigger, ports: this.ports, ...(overlay ? { overlay } : {}) }),
          RELOAD_TIMEOUT_MS,
        );
        s.state = v.state;
        return { slot: s.index, pid: v.state.pid, result: v.result };
      } catch (e) {
        return { slot: s.index, ...(w.process.pid ? { pid: w.process.pid } : {}), error: (e as Error).message };
      }
    };
    const each: WorkerReload[] = [];
    if (up.length) {
      const first = await one(up[0]!);
      each.push(first);
      // A hash: worker 1's new config is live, even if a listener of it waits for its port (not ok).
      if ((first.result?.ok || first.result?.hash) && up[0]!.state) {
        this.ports = { ...up[0]!.state.ports };
        this.watchList = up[0]!.state.watch;
        // What worker 1 read, digested before it read it: a change written meanwhile reloads again.
        this.sources.resync(new Map(up[0]!.state.seen));
      }
      each.push(...(await Promise.all(up.slice(1).map(one))));
    }
    const result = groupReload(trigger, at, each);
    const fields = { trigger, hash: result.hash, workers: result.workers };
    if (result.ok) this.opts.logger.info("workers reloaded", fields);
    else
      this.opts.logger.error("config rejected by the workers; each keeps its previous config", {
        ...fields,
        error: result.error,
      });
    return result;
  }

  // ---- management ---------------------------------------------------------------------------

  private async reports(): Promise<SlotReport[]> {
    return Promise.all(
      this.slots.map(async (s): Promise<SlotReport> => {
        const w = s.worker;
        if (!w) return { slot: s.index, missing: "restarting" };
        if (!s.state) return { slot: s.index, missing: "starting" };
        try {
          const state = await this.calls.call<WorkerState>(
            w,
            (id) => this.send(w, { t: "harmony:state", id }),
            STATE_TIMEOUT_MS,
          );
          s.state = state;
          return { slot: s.index, state };
        } catch (e) {
          return { slot: s.index, missing: `not answering (${(e as Error).message})` };
        }
      }),
    );
  }

  async readiness(): Promise<Readiness> {
    return groupReadiness(await this.reports(), this.stopping);
  }

  /** Every worker's metrics, aggregated by prom-client (sum unless a metric says otherwise), and the group's own. */
  async metrics(): Promise<string> {
    return (await this.aggregator.clusterMetrics()) + (await this.own.metrics());
  }

  async workerList(): Promise<object[]> {
    const reports = await this.reports();
    return reports.map((r) => {
      const slot = this.slots[r.slot]!;
      const base = { worker: r.slot + 1, restarts: slot.restarts };
      if ("missing" in r) return { ...base, ready: false, reason: r.missing };
      const s = r.state;
      return {
        ...base,
        pid: s.pid,
        ready: s.readiness.ready,
        ...(s.readiness.reason ? { reason: s.readiness.reason } : {}),
        ...(s.readiness.configHash ? { config_hash: s.readiness.configHash } : {}),
        requests: s.requests,
        last_reload: s.last_reload,
      };
    });
  }

  // ---- shutdown -----------------------------------------------------------------------------

  /** SIGTERM to every worker (each drains as a single process does); SIGKILL to any still there after the grace. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.sources.close();
    const live = this.slots.flatMap((s) => (s.worker ? [s.worker] : []));
    if (live.length === 0) return;
    const done = new Promise<void>((r) => (this.exited = r));
    for (const w of live) w.process.kill("SIGTERM");
    const grace = setTimeout(() => {
      for (const s of this.slots) {
        if (!s.worker) continue;
        this.opts.logger.error("worker did not stop in time; killing it", { worker: s.index + 1 });
        s.worker.process.kill("SIGKILL");
      }
    }, this.opts.shutdownTimeoutMs + 5_000);
    await done;
    clearTimeout(grace);
  }
}
