/**
 * The Gateway API controller: informers for GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants,
 * Services, EndpointSlices, Namespaces and HarmonyPipelines (ExtensionRef filters), each event
 * mapped to the keys it can affect, and workers running the level-based reconciles. Runs only
 * cluster-wide (GatewayClasses are cluster-scoped; routes, grants and backends cross namespaces).
 */
import type { KubernetesObject, V1ConfigMap, V1Service } from "@kubernetes/client-node";
import type { Logger } from "winston";
import { GW_GROUP, GW_VERSION, type HTTPRoute } from "../api/gateway-api.js";
import { GROUP, VERSION } from "../api/v1alpha1.js";
import type { OperatorMetrics } from "../metrics.js";
import { makeCache, type Cache, type CacheSpec } from "../provider/cache.js";
import type { KubeClients } from "../provider/kube.js";
import { WorkQueue } from "../provider/queue.js";
import { MANAGED_BY } from "../translator/workload.js";
import { reconcileClass, reconcileGateway, reconcileRoute, type GwCaches, type GwDeps } from "./reconcile.js";
import { K8S_GATEWAY_LABEL } from "./workload.js";

export interface GatewayApiOptions {
  kube: KubeClients;
  logger: Logger;
  metrics: OperatorMetrics;
  manageWorkloads: boolean;
  defaultImage?: string;
  relistMs?: number;
  secretRecheckMs?: number;
}

export class GatewayApiController {
  readonly queue = new WorkQueue();
  private readonly caches: GwCaches;
  private workers: Promise<void>[] = [];
  private running = false;
  /** Gateways ("ns/name") each route referenced when last seen, so a moved route leaves the old one now. */
  private readonly routeParents = new Map<string, string[]>();

  constructor(private readonly opts: GatewayApiOptions) {
    const { kube, logger } = opts;
    const cache = <T extends KubernetesObject>(spec: CacheSpec<T>) =>
      makeCache<T>(kube.kc, [], { relistMs: opts.relistMs, ...spec }, logger);
    const custom = (group: string, version: string, plural: string) => ({
      path: () => `/apis/${group}/${version}/${plural}`,
      list: () => kube.custom.listClusterCustomObject({ group, version, plural }) as never,
    });
    const all = () => {
      for (const g of this.caches.gateways.list()) this.add("gateway", g);
    };
    const classes = cache<never>({
      name: "gatewayclasses",
      ...custom(GW_GROUP, GW_VERSION, "gatewayclasses"),
      onChange: (c: KubernetesObject) => {
        this.queue.add(`class//${c.metadata?.name}`);
        all();
        for (const r of this.caches.routes.list()) this.add("route", r);
      },
    });
    const gateways = cache<never>({
      name: "k8s-gateways",
      ...custom(GW_GROUP, GW_VERSION, "gateways"),
      onChange: (g: KubernetesObject) => {
        this.add("gateway", g);
        // Routes' Accepted depends on the listeners.
        for (const r of this.caches.routes.list())
          if ((r.spec.parentRefs ?? []).some((p) => p.name === g.metadata?.name)) this.add("route", r);
      },
    });
    const routes = cache<never>({
      name: "httproutes",
      ...custom(GW_GROUP, GW_VERSION, "httproutes"),
      onChange: (r: HTTPRoute, verb) => this.routeChanged(r, verb),
    });
    const everything = () => {
      all();
      for (const r of this.caches.routes.list()) this.add("route", r);
    };
    const grants = cache<never>({
      name: "referencegrants",
      ...custom(GW_GROUP, "v1", "referencegrants"),
      onChange: everything,
    });
    const namespaces = cache<KubernetesObject>({
      name: "gw-namespaces",
      path: () => "/api/v1/namespaces",
      list: () => kube.core.listNamespace(),
      onChange: everything,
    });
    // Backends: a Service or its EndpointSlices changing re-renders the gateways of routes naming it.
    const backendChanged = (ns: string | undefined, svc: string | undefined) => {
      for (const r of this.caches.routes.list()) {
        const uses = (r.spec.rules ?? []).some((rule) =>
          (rule.backendRefs ?? []).some((b) => b.name === svc && (b.namespace ?? r.metadata.namespace) === ns),
        );
        if (uses) this.routeChanged(r, "update");
      }
    };
    const services = cache<V1Service>({
      name: "services",
      path: () => "/api/v1/services",
      list: () => kube.core.listServiceForAllNamespaces(),
      onChange: (s) => backendChanged(s.metadata?.namespace, s.metadata?.name),
    });
    const slices = cache<never>({
      name: "endpointslices",
      ...custom("discovery.k8s.io", "v1", "endpointslices"),
      onChange: (s: KubernetesObject) =>
        backendChanged(s.metadata?.namespace, s.metadata?.labels?.["kubernetes.io/service-name"]),
    });
    const pipelines = cache<never>({
      name: "gw-pipelines",
      ...custom(GROUP, VERSION, "harmonypipelines"),
      onChange: (p: KubernetesObject) => {
        for (const r of this.caches.routes.list(p.metadata?.namespace)) {
          const uses = (r.spec.rules ?? []).some((rule) =>
            (rule.filters ?? []).some((f) => f.extensionRef?.name === p.metadata?.name),
          );
          if (uses) this.routeChanged(r, "update");
        }
      },
    });
    const managed = `app.kubernetes.io/managed-by=${MANAGED_BY},${K8S_GATEWAY_LABEL}`;
    const configMaps = cache<V1ConfigMap>({
      name: "gw-configmaps",
      path: () => "/api/v1/configmaps",
      labelSelector: managed,
      list: () => kube.core.listConfigMapForAllNamespaces({ labelSelector: managed }),
      onChange: () => undefined,
    });
    this.caches = { classes, gateways, routes, grants, services, slices, namespaces, pipelines, configMaps };
  }

  private add(kind: "gateway" | "route", o: KubernetesObject): void {
    if (o.metadata?.namespace && o.metadata.name) this.queue.add(`${kind}/${o.metadata.namespace}/${o.metadata.name}`);
  }

  private routeChanged(r: HTTPRoute, verb: "add" | "update" | "delete"): void {
    const key = `${r.metadata.namespace}/${r.metadata.name}`;
    const now = (r.spec.parentRefs ?? []).map((p) => `${p.namespace ?? r.metadata.namespace}/${p.name}`);
    for (const g of new Set([...(this.routeParents.get(key) ?? []), ...now])) this.queue.add(`gateway/${g}`);
    if (verb === "delete") this.routeParents.delete(key);
    else this.routeParents.set(key, now);
    if (verb !== "delete") this.add("route", r);
  }

  async start(): Promise<void> {
    this.running = true;
    await Promise.all(Object.values(this.caches).map((c: Cache<KubernetesObject>) => c.start()));
    for (const c of this.caches.classes.list()) this.queue.add(`class//${c.metadata.name}`);
    for (const g of this.caches.gateways.list()) this.add("gateway", g);
    for (const r of this.caches.routes.list()) this.routeChanged(r, "add");
    this.workers = Array.from({ length: 2 }, () => this.work());
  }

  get synced(): boolean {
    return Object.values(this.caches).every((c: Cache<KubernetesObject>) => c.isSynced());
  }

  async stop(): Promise<void> {
    this.running = false;
    this.queue.shutDown();
    await Promise.all(this.workers);
    await Promise.all(Object.values(this.caches).map((c: Cache<KubernetesObject>) => c.stop()));
  }

  private deps(): GwDeps {
    const { kube } = this.opts;
    const readSecret = (namespace: string, name: string) =>
      kube.core.readNamespacedSecret({ namespace, name }).catch((e: unknown) => {
        if ((e as { code?: number }).code === 404) return undefined;
        throw e;
      });
    return {
      kube,
      caches: this.caches,
      logger: this.opts.logger,
      manageWorkloads: this.opts.manageWorkloads,
      defaultImage: this.opts.defaultImage,
      readSecret,
      secretRecheckMs: this.opts.secretRecheckMs,
      metrics: { writes: (kind) => this.opts.metrics.writes.inc({ kind }) },
      // The Secrets a render names, read one by one (never listed or watched), as HarmonyGateways do.
      readSecrets: async (refs) => {
        const uniq = [...new Map(refs.map((r) => [r.join("/"), r])).values()];
        const found = new Map(
          await Promise.all(uniq.map(async ([ns, n]) => [`${ns}/${n}`, await readSecret(ns, n)] as const)),
        );
        return (ns: string, n: string) => {
          const s = found.get(`${ns}/${n}`);
          if (!s) return undefined;
          return {
            data: Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")])),
            revision: `${s.metadata?.uid ?? ""}/${s.metadata?.resourceVersion ?? ""}`,
          };
        };
      },
    };
  }

  private async work(): Promise<void> {
    const m = this.opts.metrics;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const [kind, ns, name] = key.split("/") as [string, string, string];
      const end = m.reconcileTime.startTimer({ kind: `gwapi-${kind}` });
      try {
        const deps = this.deps();
        const r =
          kind === "class"
            ? await reconcileClass(deps, name)
            : kind === "gateway"
              ? await reconcileGateway(deps, ns, name)
              : await reconcileRoute(deps, ns, name);
        this.queue.forget(key);
        m.reconciles.inc({ kind: `gwapi-${kind}`, result: "success" });
        if (r.requeueAfterMs && this.running) this.queue.addAfter(key, r.requeueAfterMs);
      } catch (e) {
        m.reconciles.inc({ kind: `gwapi-${kind}`, result: "error" });
        const delay = this.queue.addRateLimited(key);
        this.opts.logger.warn("Reconcile failed; retrying", { key, error: (e as Error).message, retry_in_ms: delay });
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}
