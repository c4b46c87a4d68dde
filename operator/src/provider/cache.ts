/**
 * One read-only cache per kind, whatever the watch scope: cluster-wide is one informer; a list of
 * namespaces is one informer per namespace (a namespaced Role grants nothing cluster-wide, so a
 * scoped operator cannot list across namespaces), read through as if it were one.
 */
import type { KubeConfig, KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "winston";
import { ResilientInformer } from "./informers.js";

export interface Cache<T extends KubernetesObject> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Every underlying informer has listed at least once. */
  isSynced(): boolean;
}

export interface CacheSpec<T extends KubernetesObject> {
  name: string;
  /** Watch path for a namespace, or for all namespaces when `ns` is undefined. */
  path: (ns?: string) => string;
  list: (ns?: string) => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  relistMs?: number;
  onChange: (obj: T, verb: "add" | "update" | "delete") => void;
}

/** `namespaces` empty: all namespaces. */
export function makeCache<T extends KubernetesObject>(
  kc: KubeConfig,
  namespaces: readonly string[],
  spec: CacheSpec<T>,
  logger: Logger,
): Cache<T> {
  const informer = (ns?: string) =>
    new ResilientInformer<T>(
      kc,
      {
        name: ns ? `${spec.name}/${ns}` : spec.name,
        path: spec.path(ns),
        list: () => spec.list(ns),
        labelSelector: spec.labelSelector,
        relistMs: spec.relistMs,
        onChange: spec.onChange,
      },
      logger,
    );
  if (namespaces.length === 0) return informer();
  const byNs = new Map(namespaces.map((ns) => [ns, informer(ns)]));
  return {
    get: (name, ns) => (ns === undefined ? undefined : byNs.get(ns)?.get(name, ns)),
    list: (ns) => (ns === undefined ? [...byNs.values()].flatMap((i) => i.list()) : (byNs.get(ns)?.list(ns) ?? [])),
    start: async () => void (await Promise.all([...byNs.values()].map((i) => i.start()))),
    stop: async () => void (await Promise.all([...byNs.values()].map((i) => i.stop()))),
    isSynced: () => [...byNs.values()].every((i) => i.isSynced()),
  };
}

/** "a, b,,c" → ["a","b","c"]; "" or undefined → [] (all namespaces). */
export function parseNamespaces(v: string | undefined): string[] {
  return [
    ...new Set(
      (v ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ].sort();
}
