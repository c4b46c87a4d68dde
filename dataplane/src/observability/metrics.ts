/**
 * Prometheus metrics. Label children are bound once per route when a config generation is
 * compiled, so the hot path does no label hashing beyond the status code.
 */
import { createRequire } from "node:module";
import client from "prom-client";
import { FastCounter, FastHistogram } from "./fast-metrics.js";
import { GcMetric } from "./gc-metric.js";

const requireCjs = createRequire(import.meta.url);

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new client.Registry();

  // The three per-request families use FastCounter/FastHistogram (see fast-metrics.ts).
  readonly requests = new FastCounter(
    "harmony_http_requests_total",
    "Requests handled by pipelines, by pipeline, endpoint, backend, method and status.",
    ["pipeline", "endpoint", "backend", "method", "status"],
    this.registry,
  );

  readonly duration = new FastHistogram(
    "harmony_http_request_duration_seconds",
    "Time from request arrival to the end of the response, by pipeline, endpoint and backend.",
    ["pipeline", "endpoint", "backend"],
    this.registry,
    BUCKETS,
  );

  readonly upstreamDuration = new FastHistogram(
    "harmony_upstream_request_duration_seconds",
    "Time spent in the backend, from dispatch to the end of its response, by pipeline and backend.",
    ["pipeline", "backend"],
    this.registry,
    BUCKETS,
  );

  readonly upstreamTargetRequests = new client.Counter({
    name: "harmony_upstream_target_requests_total",
    help: "Attempts per target of a backend, by outcome (success; retried on another target; failure).",
    labelNames: ["backend", "target", "outcome"] as const,
    registers: [this.registry],
  });

  readonly upstreamTargetHealthy = new client.Gauge({
    name: "harmony_upstream_target_healthy",
    help: "1 while a target of a multi-target backend is in rotation, 0 while ejected or failing its health check.",
    labelNames: ["backend", "target"] as const,
    registers: [this.registry],
  });

  /**
   * Pipeline requests being handled now: a plain number the request path adds to and takes from,
   * read into the gauge when /metrics is scraped. prom-client's Gauge.inc()/dec() build and check
   * a labels object on every call, twice per request.
   */
  inflightNow = 0;

  readonly inflight: client.Gauge = new client.Gauge({
    name: "harmony_http_requests_in_flight",
    help: "Pipeline requests currently being handled.",
    registers: [this.registry],
    collect: (): void => this.inflight.set(this.inflightNow),
  });

  readonly unrouted = new client.Counter({
    name: "harmony_http_unrouted_requests_total",
    help: "Requests that matched no pipeline route (404) or no method (405), by network and status.",
    labelNames: ["network", "status"] as const,
    registers: [this.registry],
  });

  readonly http1Handoffs = new client.Counter({
    name: "harmony_http1_lane_handoffs_total",
    help: 'Connections the llhttp server lane (proxy.http1_server = "llhttp") handed to node:http, by network: a request it does not serve itself (a body, management, 404/405, middleware routes...).',
    labelNames: ["network"] as const,
    registers: [this.registry],
  });

  readonly reloadSuccessful = new client.Gauge({
    name: "harmony_config_last_reload_successful",
    help: "1 if the last config (re)load succeeded, 0 if it failed and the previous config is still serving.",
    registers: [this.registry],
    // Across a group's workers (proxy.workers): 0 when any worker's last reload failed.
    aggregator: "min",
  });

  readonly reloads = new client.Counter({
    name: "harmony_config_reload_total",
    help: "Config (re)load attempts by result (success, failure, unchanged).",
    labelNames: ["result", "trigger"] as const,
    registers: [this.registry],
  });

  readonly reloadTimestamp = new client.Gauge({
    name: "harmony_config_last_reload_success_timestamp_seconds",
    help: "Unix time of the last successful config load.",
    registers: [this.registry],
    // Across a group's workers: the one that has gone longest without one.
    aggregator: "min",
  });

  readonly listenersUnbound = new client.Gauge({
    name: "harmony_listeners_unbound",
    help: "Configured listeners not bound as configured (port taken): their last good listener, if any, serves meanwhile.",
    registers: [this.registry],
    // Across a group's workers: the most any worker lacks.
    aggregator: "max",
  });

  readonly listenerBindRetries = new client.Counter({
    name: "harmony_listener_bind_retries_total",
    help: "Retried binds of listeners a reload could not bind, by network and result (bound, failed).",
    labelNames: ["network", "result"] as const,
    registers: [this.registry],
  });

  readonly configInfo = new client.Gauge({
    name: "harmony_config_info",
    help: "The config currently serving: 1 for its hash, 0 for earlier ones.",
    labelNames: ["hash"] as const,
    registers: [this.registry],
    // Across a group's workers: 1 for every hash some worker serves (two while a reload is under way).
    aggregator: "max",
  });

  /**
   * `process: false` leaves out the process metrics: what `--check` and the operator's render
   * validation build per call. prom-client's default metrics start an event-loop delay monitor
   * (a 10 ms timer) that nothing stops, and it would keep this whole Metrics alive with it.
   */
  constructor(opts: { process?: boolean } = {}) {
    // Standard names (process_*, nodejs_*), so stock dashboards work. The event-loop delay monitor
    // samples every 100 ms, not prom-client's 10 ms: an idle pod otherwise wakes 100 times a second.
    // prom-client's default metrics one by one (what collectDefaultMetrics does) but its gc one,
    // which GcMetric replaces: cheaper per GC, and it can be turned off (`metrics.gc`).
    if (opts.process !== false) {
      const config = { eventLoopMonitoringPrecision: 100 };
      for (const name of client.collectDefaultMetrics.metricsList) {
        if (name === "gc") continue;
        const collect = requireCjs(`prom-client/lib/metrics/${name}.js`) as (r: client.Registry, c: object) => void;
        collect(this.registry, config);
      }
      this.gc = new GcMetric(this.registry);
      this.gc.enable();
    }
  }

  /** `nodejs_gc_duration_seconds`, unless built without process metrics. */
  readonly gc: GcMetric | undefined;

  /** `metrics.gc`: record GC durations (the default) or not; a reload may change it. */
  setGcMetric(on: boolean): void {
    if (on) this.gc?.enable();
    else this.gc?.disable();
  }

  setConfigHash(hash: string): void {
    this.configInfo.reset();
    this.configInfo.set({ hash }, 1);
  }
}
