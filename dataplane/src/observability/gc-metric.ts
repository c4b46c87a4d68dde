/**
 * `nodejs_gc_duration_seconds`, the one default process metric that costs something per GC rather
 * than per scrape. Same name, help, label and buckets as prom-client's, so dashboards read it
 * unchanged; every GC is counted (prom-client read only the first entry of each observer callback).
 *
 * Recorded from `v8.GCProfiler`, not a PerformanceObserver on 'gc' entries. For an observer, Node
 * builds a PerformanceEntry per GC in JS, with two `deprecate()` wrappers (each a fresh function
 * whose prototype is set: a new map per GC) for the deprecated `entry.kind`/`flags` accessors, and
 * queues it through two immediates; that made every GC about 70–160 µs dearer, 1–1.7 µs per 1 KiB
 * request (bench/README.md). The profiler notes each GC in C++ (its type, its duration, the heap
 * before and after) with no JS at all; the notes are read in a batch when /metrics is scraped and
 * every HARVEST_MS in between (the log it keeps is ~4 KB per GC until then). Both see the same
 * GCs: V8's GC prologue and epilogue, nested ones skipped alike, durations from the same clocks.
 *
 * `metrics.gc = false` turns it off: nothing is recorded, and the metric leaves /metrics.
 */
import { GCProfiler } from "node:v8";
import type { Registry } from "prom-client";
import { FastHistogram, type HistogramChild } from "./fast-metrics.js";

export const GC_METRIC = "nodejs_gc_duration_seconds";
const HELP = "Garbage collection duration by kind, one of major, minor, incremental or weakcb.";
/** prom-client's buckets for this metric (lib/metrics/gc.js). */
const BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];
/** The longest the profiler's log grows between two reads (at ~200 GCs/s: ~0.8 MB). */
export const HARVEST_MS = 1000;

/** The `kind` label of GCProfiler's `gcType` (node_v8.cc GetGCTypeName), as perf_hooks names them. */
const KINDS: Record<string, string> = {
  Scavenge: "minor",
  MarkSweepCompact: "major",
  IncrementalMarking: "incremental",
  ProcessWeakCallbacks: "weakcb",
};

interface GcNote {
  gcType: string;
  /** µs */
  cost: number;
}

export class GcMetric {
  private histogram: FastHistogram | undefined;
  /** Children by `gcType`, bound at the first GC of each kind. */
  private byType = new Map<string, HistogramChild>();
  private profiler: GCProfiler | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** GCs recorded since this process started (for the benchmark that measures this recorder). */
  observed = 0;

  constructor(private readonly registry: Registry) {}

  get enabled(): boolean {
    return this.profiler !== undefined;
  }

  /** Starts recording (again); the counts of an earlier enabled period start over. */
  enable(): void {
    if (this.profiler) return;
    this.histogram = new FastHistogram(GC_METRIC, HELP, ["kind"], this.registry, BUCKETS, () => this.harvest());
    this.byType = new Map();
    this.profiler = new GCProfiler();
    this.profiler.start();
    (this.timer = setInterval(() => this.harvest(), HARVEST_MS)).unref();
  }

  /** Stops recording and takes the metric out of the registry. */
  disable(): void {
    if (!this.profiler) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.profiler.stop();
    this.profiler = undefined;
    this.registry.removeSingleMetric(GC_METRIC);
    this.histogram = undefined;
  }

  /** Records the GCs noted since the last harvest. */
  harvest(): void {
    const old = this.profiler;
    if (!old) return;
    // The next log starts before this one stops: reading it (a JSON.parse) allocates and may
    // collect, and that GC belongs to the next batch rather than to none.
    const next = new GCProfiler();
    next.start();
    this.profiler = next;
    const notes: readonly GcNote[] = old.stop()?.statistics ?? [];
    for (let i = 0; i < notes.length; i++) {
      const n = notes[i]!;
      let child = this.byType.get(n.gcType);
      if (!child) {
        const kind = KINDS[n.gcType];
        if (kind === undefined || !this.histogram) continue;
        child = this.histogram.labels(kind);
        this.byType.set(n.gcType, child);
      }
      child.observe(n.cost / 1e6);
      this.observed++;
    }
  }
}
