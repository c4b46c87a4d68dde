/**
 * Wires informers to the work queue and the queue to the reconciler. Every event maps to the
 * gateway keys it can affect; the reconciler then looks at the whole current state (level-based),
 * so a lost or duplicated event changes nothing.
 */
import type { KubernetesObject, V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "winston";
import { GROUP, VERSION, type HarmonyEndpoint, type HarmonyGateway, type HarmonyPipeline } from "../api/v1alpha1.js";
import { makeCache, type Cache, type CacheSpec } from "../provider/cache.js";
import type { KubeClients } from "../provider/kube.js";
import { WorkQueue } from "../provider/queue.js";
import { GATEWAY_LABEL, MANAGED_BY } from "../translator/workload.js";
import { reconcileEndpoint } from "./endpoint-reconciler.js";
import { EndpointUsers } from "./endpoint-users.js";
import { reconcileGateway, writeStatus, type Caches, type ReconcilerDeps } from "./gateway-reconciler.js";
import { reconcileGatewayNet } from "./gateway-net.js";
import { attachment, detachedConditions, type Attachment } from "./attachment.js";
import type { OperatorMetrics } from "../metrics.js";
import type { HarmonyNetwork } from "../api/network.js";
import { NetworkRegistry } from "../network/state.js";
import { reconcileNetwork, type NetworkDeps } from "./network-reconciler.js";
import {
  SpecSeen,
  endpointFingerprint,
  gatewayFingerprint,
  judged,
  pipelineFingerprint,
  pipelineUseFingerprint,
} from "./spec-seen.js";
import { Coalescer, DEFAULT_COALESCE, type CoalesceOptions } from "./coalesce.js";
import { OwnWrites } from "./own-writes.js";
import { OwnStatuses } from "./own-statuses.js";
import { HASH_ANNOTATION } from "./reconciler-deps.js";

export interface ControllerOptions {
  kube: KubeClients;
  logger: Logger;
  metrics: OperatorMetrics;
  /** Namespaces to watch; empty or absent = all. */
  namespaces?: readonly string[];
  manageWorkloads?: boolean;
  defaultImage?: string;
  workers?: number;
  relistMs?: number;
  /** See ReconcilerDeps.secretRecheckMs. */
  secretRecheckMs?: number;
  /** See ReconcilerDeps.newEndpointGraceMs. */
  newEndpointGraceMs?: number;
  probe?: ReconcilerDeps["probe"];
  /**
   * Namespace of network CA Secrets, peering tokens and stored imports. HarmonyNetworks are
   * cluster-scoped: they are watched cluster-wide whatever `namespaces` says (RBAC on that one
   * kind), and a scoped operator serves only the member orgs among its namespaces.
   */
  networkNamespace?: string;
  /** Serve HarmonyNetworks (default true); off for an operator not allowed to watch them. */
  networks?: boolean;
  /** Names this cluster in federation exports. */
  clusterName?: string;
  /** How a gateway's events are gathered into one render (coalesce.ts); DEFAULT_COALESCE without. */
  coalesce?: CoalesceOptions;
}

type Gw = HarmonyGateway & KubernetesObject;
type Pl = HarmonyPipeline & KubernetesObject;
type Ep = HarmonyEndpoint & KubernetesObject;
type Net = HarmonyNetwork & KubernetesObject;

/** Stands in for a cache the operator does not run (networks off): always empty, always synced. */
const noCache = <T extends KubernetesObject>(): Cache<T> => ({
  get: () => undefined,
  list: () => [],
  start: async () => {},
  stop: async () => {},
  isSynced: () => true,
});

export class Controller {
  readonly queue = new WorkQueue();
  /**
   * Network and network-file keys get their own queue and worker: behind a burst of endpoint
   * status reconciles (one per endpoint, several each as pipelines become programmed) they would
   * wait their turn in the main queue, and the directory would trail the config by that backlog.
   */
  readonly netQueue = new WorkQueue();
  /**
   * Gateway keys likewise: a config change must not wait its turn behind the endpoint status
   * reconciles that the last one set off (two per endpoint, each an API round trip: at 1,000
   * pipelines, minutes of them on a loaded API server).
   */
  readonly gatewayQueue = new WorkQueue();
  /** The ConfigMaps this operator last wrote (own-writes.ts). */
  private readonly ownWrites = new OwnWrites(HASH_ANNOTATION);
  /** The endpoint statuses this operator last wrote (own-statuses.ts). */
  private readonly endpointStatuses = new OwnStatuses();
  /**
   * Between a gateway's events and its queue: arrivals that stream in are rendered together,
   * at most every maxDelayMs, and one change alone after a short quiet period (coalesce.ts).
   */
  private readonly gatewayEvents: Coalescer;
  private readonly caches: Caches;
  private running = false;
  private workers: Promise<void>[] = [];
  /**
   * Pipelines by the endpoints they reference, fed by every pipeline event: an endpoint's reconcile
   * and events look its users up instead of scanning every pipeline, and an edit that drops an
   * endpoint still updates it.
   */
  private readonly endpointUsers = new EndpointUsers();
  /**
   * The gateway ("ns/name") each pipeline referenced when last seen: client-node's informer hands
   * an update only the new object, and a pipeline moved to another gateway must leave the old
   * one's config now, not at the next relist.
   */
  private readonly gatewayRefs = new Map<string, string>();
  /** Generation (and whether deleting) of each gateway when its pipelines were last re-checked. */
  private readonly gatewaySeen = new SpecSeen();
  /** Generation, labels and deletion of each pipeline when its gateways were last told about it. */
  private readonly pipelineSeen = new SpecSeen();
  /** Generation of each endpoint when gateways and networks were last told about it. */
  private readonly endpointSeen = new SpecSeen();
  /** What each pipeline's endpoints last read of its status (pipelineUseFingerprint). */
  private readonly pipelineUseSeen = new SpecSeen();
  /** Set when networks are on. */
  private readonly networks?: NetworkRegistry;

  constructor(private readonly opts: ControllerOptions) {
    const { kube, logger } = opts;
    this.gatewayEvents = new Coalescer(opts.coalesce ?? DEFAULT_COALESCE, (key) => this.gatewayQueue.add(key));
    const namespaces = opts.namespaces ?? [];
    const relistMs = opts.relistMs;
    const cache = <T extends KubernetesObject>(spec: CacheSpec<T>) =>
      makeCache<T>(kube.kc, namespaces, { relistMs, ...spec }, logger);
    const crd = (plural: string) => ({
      path: (ns?: string) =>
        ns ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${plural}` : `/apis/${GROUP}/${VERSION}/${plural}`,
      list: (ns?: string) =>
        (ns
          ? kube.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural })
          : kube.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as never,
    });
    const core = (plural: string) => (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/${plural}` : `/api/v1/${plural}`);
    const managed = `app.kubernetes.io/managed-by=${MANAGED_BY}`;

    const gateways = cache<Gw>({
      name: "gateways",
      ...crd("harmonygateways"),
      onChange: (o, verb) => {
        this.enqueueNetworksOf(o.metadata?.namespace);
        // The gateway's render, and which pipelines attach to it (deleted gateway,
        // allowedNamespaces or pipelineSelector edited: each pipeline reports its own attachment),
        // change only with its spec (generation), deletion or arrival. Our own status writes are
        // events too: re-rendering 1,000 pipelines on each of them was work for nothing at scale.
        const key = `${o.metadata?.namespace}/${o.metadata?.name}`;
        if (!this.gatewaySeen.changed(key, verb, gatewayFingerprint(o.metadata))) return;
        this.enqueueGateway(o.metadata?.namespace, o.metadata?.name);
        this.enqueuePipelinesOf(o.metadata?.namespace, o.metadata?.name);
      },
    });
    const pipelines = cache<Pl>({
      name: "pipelines",
      ...crd("harmonypipelines"),
      onChange: (p, verb) => {
        const key = `${p.metadata.namespace}/${p.metadata.name}`;
        // The endpoints it used before this event or uses now: each one's users may have changed.
        const touched = this.endpointUsers.update(p, verb);
        // Its endpoints read whether a gateway has judged it and whether it is Programmed: a
        // status write that changes neither (pod counts in a message) is no news to them.
        const useChanged = this.pipelineUseSeen.changed(key, verb, pipelineUseFingerprint(p));
        // A status-only update (our own writes above all: one per pipeline per config change)
        // changes nothing a gateway renders or attaches by; only its endpoints' Ready (InUse)
        // reads the pipeline's status. Spec (generation), labels (pipelineSelector) and deletion do.
        if (!this.pipelineSeen.changed(key, verb, pipelineFingerprint(p.metadata))) {
          if (useChanged) for (const e of touched) this.queue.add(`endpoint/${p.metadata.namespace}/${e}`);
          return;
        }
        const gwKey = `${p.spec.gatewayRef.namespace ?? p.metadata.namespace}/${p.spec.gatewayRef.name}`;
        const oldGw = this.gatewayRefs.get(key);
        for (const g of new Set([gwKey, ...(oldGw ? [oldGw] : [])])) this.gatewayEvents.poke(`gateway/${g}`);
        if (verb === "delete") this.gatewayRefs.delete(key);
        else this.gatewayRefs.set(key, gwKey);
        this.queue.add(`pipeline/${key}`);
        this.enqueueNetworksOf(p.metadata.namespace);
        // A new pipeline no gateway has judged yet: its endpoints wait for that verdict, whose
        // status write is news to them (useChanged above), rather than each being reconciled now
        // to find an unjudged user and write nothing (endpoint-reconciler.ts), then again.
        if (verb === "add" && !judged(p)) return;
        for (const e of touched) this.queue.add(`endpoint/${p.metadata.namespace}/${e}`);
      },
    });
    const endpoints = cache<Ep>({
      name: "endpoints",
      ...crd("harmonyendpoints"),
      onChange: (e, verb) => {
        const key = `${e.metadata.namespace}/${e.metadata.name}`;
        const specChanged = this.endpointSeen.changed(key, verb, endpointFingerprint(e.metadata));
        if (verb === "delete") this.endpointStatuses.forget(e);
        // Our own status write coming back, on the spec it was written for, is no news to the
        // reconcile that wrote it (own-statuses.ts).
        if (!specChanged && this.endpointStatuses.isEcho(e)) return;
        this.queue.add(`endpoint/${key}`);
        // Gateways render, and the directory reads, the spec only: our own status writes (one
        // or more per endpoint) must not each cost a gateway render or a network reconcile.
        if (!specChanged) return;
        this.enqueueUsersOf(e.metadata.namespace, e.metadata.name);
        this.enqueueNetworksOf(e.metadata.namespace);
      },
    });
    // No Secret informer: it would hold every Secret in the cluster. The reconciler GETs the few
    // it renders (ReconcilerDeps.readSecret).
    const configMaps = cache<V1ConfigMap>({
      name: "configmaps",
      path: core("configmaps"),
      labelSelector: managed,
      list: (ns) =>
        ns
          ? kube.core.listNamespacedConfigMap({ namespace: ns, labelSelector: managed })
          : kube.core.listConfigMapForAllNamespaces({ labelSelector: managed }),
      onChange: (o, verb) => {
        // Our own write coming back is no news to the gateway that just rendered it (own-writes.ts).
        if (verb === "delete") this.ownWrites.forget(o);
        else if (this.ownWrites.isEcho(o)) return;
        this.enqueueGateway(o.metadata?.namespace, o.metadata?.labels?.[GATEWAY_LABEL]);
      },
    });
    const pods = cache<V1Pod>({
      name: "pods",
      path: core("pods"),
      labelSelector: GATEWAY_LABEL,
      list: (ns) =>
        ns
          ? kube.core.listNamespacedPod({ namespace: ns, labelSelector: GATEWAY_LABEL })
          : kube.core.listPodForAllNamespaces({ labelSelector: GATEWAY_LABEL }),
      onChange: (o) => this.enqueueGateway(o.metadata?.namespace, o.metadata?.labels?.[GATEWAY_LABEL]),
    });
    const networksOn = opts.networks !== false;
    if (networksOn) this.networks = new NetworkRegistry();
    const networks = networksOn
      ? makeCache<Net>(
          kube.kc,
          [],
          {
            name: "networks",
            ...crd("harmonynetworks"),
            relistMs,
            onChange: (n) => this.netQueue.add(`network//${n.metadata.name}`),
          },
          logger,
        )
      : noCache<Net>();
    // Namespaces, for spec.members.namespaceSelector: a namespace's labels decide membership. A
    // scoped operator may not list them; it reads its own namespaces one by one (networkDeps).
    const namespaceCache =
      networksOn && namespaces.length === 0
        ? makeCache<KubernetesObject>(
            kube.kc,
            [],
            {
              name: "namespaces",
              path: () => "/api/v1/namespaces",
              list: () => kube.core.listNamespace(),
              relistMs,
              onChange: () => {
                for (const n of networks.list())
                  if (n.spec.members.namespaceSelector) this.netQueue.add(`network//${n.metadata.name}`);
              },
            },
            logger,
          )
        : noCache<KubernetesObject>();
    this.caches = { gateways, pipelines, endpoints, configMaps, pods, networks, namespaces: namespaceCache };
  }

  /** Networks that may count this namespace as a member org (all of them before their first reconcile). */
  private enqueueNetworksOf(ns: string | undefined): void {
    if (!this.networks || !ns) return;
    for (const n of this.caches?.networks.list() ?? []) {
      const rt = this.networks.get(n.metadata.name!);
      const unseen = !rt && !this.networks.isForeign(n.metadata.name!);
      if (unseen || rt?.orgs.includes(ns) || n.spec.members.orgs?.includes(ns) || n.spec.members.namespaceSelector)
        this.netQueue.add(`network//${n.metadata.name}`);
    }
  }

  async start(): Promise<void> {
    this.running = true;
    await Promise.all(Object.values(this.caches).map((c: Cache<KubernetesObject>) => c.start()));
    // Straight to the queue: the first render of each gateway has nothing to wait for.
    for (const g of this.caches.gateways.list())
      this.gatewayQueue.add(`gateway/${g.metadata?.namespace}/${g.metadata?.name}`);
    for (const p of this.caches.pipelines.list()) this.queue.add(`pipeline/${p.metadata.namespace}/${p.metadata.name}`);
    for (const e of this.caches.endpoints.list()) this.queue.add(`endpoint/${e.metadata.namespace}/${e.metadata.name}`);
    for (const n of this.caches.networks.list()) this.netQueue.add(`network//${n.metadata.name}`);
    // Most main-queue work is one status PATCH: waiting on the API server, not on this CPU.
    const n = this.opts.workers ?? 4;
    this.workers = Array.from({ length: n }, () => this.work(this.queue));
    // Two, so one gateway writing its pipelines' statuses does not hold up another's config.
    this.workers.push(this.work(this.gatewayQueue), this.work(this.gatewayQueue));
    if (this.networks) this.workers.push(this.work(this.netQueue));
  }

  /** Every informer has listed at least once (for /readyz). */
  get synced(): boolean {
    return Object.values(this.caches).every((c: Cache<KubernetesObject>) => c.isSynced());
  }

  async stop(): Promise<void> {
    this.running = false;
    this.gatewayEvents.stop();
    this.queue.shutDown();
    this.netQueue.shutDown();
    this.gatewayQueue.shutDown();
    await Promise.all(this.workers);
    await Promise.all(Object.values(this.caches).map((c: Cache<KubernetesObject>) => c.stop()));
  }

  /** Through the coalescer: events come in bursts (coalesce.ts). */
  private enqueueGateway(ns: string | undefined, name: string | undefined): void {
    if (ns && name) this.gatewayEvents.poke(`gateway/${ns}/${name}`);
  }

  /** Pipelines whose gatewayRef names this gateway. */
  private enqueuePipelinesOf(ns: string | undefined, name: string | undefined): void {
    for (const p of this.caches?.pipelines.list() ?? []) {
      if (p.spec.gatewayRef.name === name && (p.spec.gatewayRef.namespace ?? p.metadata.namespace) === ns)
        this.queue.add(`pipeline/${p.metadata.namespace}/${p.metadata.name}`);
    }
  }

  /** Gateways of the pipelines that reference this endpoint. */
  private enqueueUsersOf(ns: string | undefined, name: string | undefined): void {
    if (!ns || !name) return;
    for (const n of this.endpointUsers.of(ns, name)) {
      const p = this.caches?.pipelines.get(n, ns);
      if (p) this.enqueueGateway(p.spec.gatewayRef.namespace ?? ns, p.spec.gatewayRef.name);
    }
  }

  private async work(queue: WorkQueue): Promise<void> {
    const m = this.opts.metrics;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      if (queue === this.queue) m.queueDepth.set(queue.length);
      const [kind, ns, name] = key.split("/") as [string, string, string];
      const end = m.reconcileTime.startTimer({ kind });
      const coalesced = queue === this.gatewayQueue && kind === "gateway";
      if (coalesced) this.gatewayEvents.started(key);
      try {
        const r =
          kind === "network"
            ? await reconcileNetwork(this.networkDeps(), name)
            : kind === "gatewaynet"
              ? await reconcileGatewayNet(this.deps(), ns, name)
              : kind === "gateway"
                ? await reconcileGateway(
                    // A newer change waits: in the queue, or still gathering in the coalescer.
                    { ...this.deps(), superseded: () => queue.pending(key) || this.gatewayEvents.waiting(key) },
                    ns,
                    name,
                  )
                : kind === "endpoint"
                  ? await reconcileEndpoint(this.deps(), ns, name, this.endpointUsers.of(ns, name))
                  : await this.reconcilePipeline(ns, name);
        queue.forget(key);
        m.reconciles.inc({ kind, result: "success" });
        if (r.requeueAfterMs && this.running) queue.addAfter(key, r.requeueAfterMs);
        // An endpoint's only timer is its new-endpoint grace; once a reconcile needs none (a user
        // or a status came), that timer's reconcile would find nothing to do.
        else if (kind === "endpoint") queue.cancelAfter(key);
      } catch (e) {
        m.reconciles.inc({ kind, result: "error" });
        const delay = queue.addRateLimited(key);
        this.opts.logger.warn("Reconcile failed; retrying", { key, error: (e as Error).message, retry_in_ms: delay });
      } finally {
        end();
        if (coalesced) this.gatewayEvents.finished(key);
        queue.done(key);
      }
    }
  }

  /**
   * A pipeline its gateway does not take (missing, being deleted, namespace not allowed, selector
   * not matching) gets told so here, on every condition, so no Programmed=True from an earlier
   * attachment survives; an attached one is the gateway reconcile's to report.
   */
  private async reconcilePipeline(ns: string, name: string): Promise<{ requeueAfterMs?: number }> {
    const p = this.caches.pipelines.get(name, ns);
    if (!p) return {};
    const gwNs = p.spec.gatewayRef.namespace ?? ns;
    const gw = this.caches.gateways.get(p.spec.gatewayRef.name, gwNs);
    const verdict: Attachment = gw
      ? attachment(gw, p)
      : {
          attached: false,
          reason: "GatewayNotFound",
          message: `spec.gatewayRef: HarmonyGateway ${gwNs}/${p.spec.gatewayRef.name} not found`,
        };
    if (verdict.attached) return {};
    await writeStatus(this.deps(), p, "harmonypipelines", detachedConditions(verdict), {});
    return {};
  }

  private deps(): ReconcilerDeps {
    return {
      kube: this.opts.kube,
      caches: this.caches,
      logger: this.opts.logger,
      manageWorkloads: this.opts.manageWorkloads ?? true,
      defaultImage: this.opts.defaultImage,
      probe: this.opts.probe ?? probeReadyz,
      readSecret: (namespace, name) =>
        this.opts.kube.core.readNamespacedSecret({ namespace, name }).catch((e: unknown) => {
          if ((e as { code?: number }).code === 404) return undefined;
          throw e;
        }),
      readConfigMap: (namespace, name) =>
        this.opts.kube.core.readNamespacedConfigMap({ namespace, name }).catch((e: unknown) => {
          if ((e as { code?: number }).code === 404) return undefined;
          throw e;
        }),
      secretRecheckMs: this.opts.secretRecheckMs,
      newEndpointGraceMs: this.opts.newEndpointGraceMs,
      metrics: { writes: (kind) => this.opts.metrics.writes.inc({ kind }) },
      ownWrites: this.ownWrites,
      endpointStatuses: this.endpointStatuses,
      networks: this.networks,
    };
  }

  private networkDeps(): NetworkDeps {
    const d = this.deps();
    const watched = this.opts.namespaces ?? [];
    return {
      kube: d.kube,
      caches: d.caches,
      logger: d.logger,
      registry: this.networks!,
      namespace: this.opts.networkNamespace ?? "default",
      namespaces: async () => {
        const info = (ns: KubernetesObject) => ({ name: ns.metadata?.name ?? "", labels: ns.metadata?.labels ?? {} });
        if (!watched.length) return this.caches.namespaces.list().map(info);
        // GET per watched namespace: a Role in a namespace may grant `get` on that namespace
        // object, while listing namespaces needs a ClusterRole.
        const got = await Promise.all(
          watched.map((name) =>
            this.opts.kube.core.readNamespace({ name }).catch((e: unknown) => {
              if ((e as { code?: number }).code === 404) return undefined;
              throw e;
            }),
          ),
        );
        return got.filter((n): n is NonNullable<typeof n> => n !== undefined).map(info);
      },
      ...(watched.length ? { watched } : {}),
      operatorId: this.opts.networkNamespace ?? "default",
      namespaceRecheckMs: this.opts.relistMs,
      readSecret: d.readSecret,
      enqueue: (key) =>
        (key.startsWith("gatewaynet/") || key.startsWith("network/")
          ? this.netQueue
          : key.startsWith("gateway/")
            ? this.gatewayQueue
            : this.queue
        ).add(key),
      clusterName: this.opts.clusterName ?? "cluster",
      metrics: { peerImportExpired: (network, peer) => this.opts.metrics.peerImportsExpired.inc({ network, peer }) },
    };
  }
}

/** GET http://<pod>:<port>/readyz → the config hash that pod serves. */
export async function probeReadyz(ip: string, port: number): Promise<string | undefined> {
  const host = ip.includes(":") ? `[${ip}]` : ip;
  const res = await fetch(`http://${host}:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) return undefined;
  const body = (await res.json()) as { config_hash?: string };
  return body.config_hash;
}
