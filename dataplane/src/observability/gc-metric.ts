/**
 * `nodejs_gc_duration_seconds`, the one default process metric that costs something per GC rather
 * than per scrape. prom-client's own (its default metrics' `gc`) labels and validates every
 * observation through its Histogram; this records into a child bound once per GC kind, so a GC
 * costs Node's own entry plus a few additions (bench/README.md has the figures). Same name, help,
 * label and buckets as prom-client's, so dashboards read it unchanged. It also counts every GC of
 * a batch: prom-client read only the first entry of each observer callback.
 *
 * `metrics.gc = false` turns it off: no observer runs, and the metric leaves /metrics.
 */
import { PerformanceObserver, constants, type PerformanceObserverEntryList } from "node:perf_hooks";
import type { Registry } from "prom-client";
import { FastHistogram, type HistogramChild } from "./fast-metrics.js";

export const GC_METRIC = "nodejs_gc_duration_seconds";
const HELP = "Garbage collection duration by kind, one of major, minor, incremental or weakcb.";
/** prom-client's buckets for this metric (lib/metrics/gc.js). */
const BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];

const KINDS: string[] = [];
KINDS[constants.NODE_PERFORMANCE_GC_MAJOR] = "major";
KINDS[constants.NODE_PERFORMANCE_GC_MINOR] = "minor";
KINDS[constants.NODE_PERFORMANCE_GC_INCREMENTAL] = "incremental";
KINDS[constants.NODE_PERFORMANCE_GC_WEAKCB] = "weakcb";

export class GcMetric {
  private histogram: FastHistogram | undefined;
  /** Children by Node's GC kind constant, bound at the first GC of each kind. */
  private byKind: (HistogramChild | undefined)[] = [];
  private observer: PerformanceObserver | undefined;
  /** GCs recorded since this process started (for the benchmark that measures this recorder). */
  observed = 0;

  constructor(private readonly registry: Registry) {}

  get enabled(): boolean {
    return this.observer !== undefined;
  }

  /** Starts recording (again); the counts of an earlier enabled period start over. */
  enable(): void {
    if (this.observer) return;
    this.histogram = new FastHistogram(GC_METRIC, HELP, ["kind"], this.registry, BUCKETS);
    this.byKind = [];
    this.observer = new PerformanceObserver((list) => this.record(list));
    this.observer.observe({ entryTypes: ["gc"] });
  }

  /** Stops recording and takes the metric out of the registry. */
  disable(): void {
    if (!this.observer) return;
    this.observer.disconnect();
    this.observer = undefined;
    this.registry.removeSingleMetric(GC_METRIC);
    this.histogram = undefined;
  }

  private record(list: PerformanceObserverEntryList): void {
    const entries = list.getEntries();
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      // Node ≥ 16 puts the kind in `detail` (the entry's own `kind` is a deprecated accessor).
      const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? -1;
      let child = this.byKind[kind];
      if (!child) {
        const name = KINDS[kind];
        if (name === undefined || !this.histogram) continue;
        child = this.byKind[kind] = this.histogram.labels(name);
      }
      child.observe(e.duration / 1000);
      this.observed++;
    }
  }
}
