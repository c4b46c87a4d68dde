/**
 * Config generations: building one from a loaded config, the live one, and the retired ones still
 * finishing requests. Requests keep the generation they started with; a retired generation's
 * exclusive resources (connection pools) are closed when its last request finishes.
 */
import type { Logger } from "winston";
import type { LoadedConfig } from "../config/load.js";
import { resolveConfig } from "../config/resolve.js";
import { hasErrors, sortProblems, type Problem } from "../config/problems.js";
import { overlayReader, secretsDigest, type ConfigOverlay } from "../config/overlay.js";
import { compileGeneration, type Generation } from "../pipeline/compile.js";
import type { ExecutorDeps } from "../pipeline/executor.js";
import type { Registry } from "../plugins/registry.js";
import type { AccessLog } from "../observability/access-log.js";
import type { Metrics } from "../observability/metrics.js";
import type { SharedResources } from "./resources.js";
import { buildContextFactory } from "../build-context.js";

export interface Live {
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

export type Built = { ok: true; live: Live; problems: Problem[] } | { ok: false; problems: Problem[] };

export class Generations {
  /** The generation new requests take. */
  current: Live | undefined;
  private readonly draining = new Set<Live>();

  constructor(
    private readonly env: {
      registry: Registry;
      logger: Logger;
      metrics: Metrics;
      resources: SharedResources;
      accessLog: AccessLog;
    },
  ) {}

  build(loaded: LoadedConfig, overlay: ConfigOverlay | undefined): Built {
    const { registry, logger, metrics, resources, accessLog } = this.env;
    const reader = overlay ? overlayReader(overlay) : undefined;
    const buildCtx = buildContextFactory(loaded, logger, resources, reader, metrics);
    const { config, problems } = resolveConfig(loaded, registry, buildCtx);
    if (!config) return { ok: false, problems: sortProblems(problems, loaded.mainFile) };
    // Compiled even when resolving found errors, so route clashes are reported in the same pass.
    const { result, keys } = resources.collect(() => compileGeneration(config, buildCtx, metrics, loaded.locate));
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
      logger,
      accessLog: config.accessLog ? accessLog : undefined,
      bodyLimit: config.bodyLimit,
      bodyTimeout: config.bodyTimeout,
      jsonDepthLimit: config.jsonDepthLimit,
      parseLimits: config.parseLimits,
      pathNormalization: config.pathNormalization,
      onStart: () => {
        live.inflight++;
        metrics.inflightNow++;
      },
      onEnd: () => {
        live.inflight--;
        metrics.inflightNow--;
        if (live.retired && live.inflight === 0) this.release(live);
      },
    };
    return { ok: true, live, problems };
  }

  /** The swap: `next` serves new requests from now on; the previous one retires. */
  swap(next: Live): Live | undefined {
    const prev = this.current;
    this.current = next;
    if (prev) this.retire(prev);
    return prev;
  }

  /** Closes the shared resources no generation still serving uses (after a build that was thrown away). */
  async prune(): Promise<void> {
    await this.env.resources.retain(this.keysInUse());
  }

  private retire(old: Live): void {
    old.retired = true;
    if (old.inflight === 0) this.release(old);
    else this.draining.add(old);
  }

  private release(old: Live): void {
    this.draining.delete(old);
    void this.prune();
  }

  private keysInUse(): Set<string> {
    const keys = new Set<string>(this.current?.keys ?? []);
    for (const d of this.draining) for (const k of d.keys) keys.add(k);
    return keys;
  }
}
