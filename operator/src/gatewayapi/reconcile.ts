/**
 * Gateway API reconciles, level-based like the HarmonyGateway one: read the caches, compute,
 * write only what differs. A GatewayClass gets Accepted and supportedFeatures; a Gateway gets its
 * config, its workload (the same Deployment/Service model as HarmonyGateways) and its status; an
 * HTTPRoute gets one status.parents entry per parentRef that names one of our Gateways.
 */
import {
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Service,
} from "@kubernetes/client-node";
import type { Logger } from "winston";
import type { Cache } from "../provider/cache.js";
import type { KubeClients } from "../provider/kube.js";
import {
  CONTROLLER_NAME,
  GW_GROUP,
  GW_VERSION,
  type EndpointSliceLike,
  type Gateway,
  type GatewayClass,
  type HTTPRoute,
  type ReferenceGrant,
  type RouteParentStatus,
} from "../api/gateway-api.js";
import type { HarmonyPipeline } from "../api/v1alpha1.js";
import { canonical } from "../runner/conditions.js";
import { applyWorkloads, writeConfig, type WriteDeps } from "../runner/gateway-reconciler.js";
import { configMapName, workloadName } from "../translator/workload.js";
import type { SecretLookup } from "../translator/file-options.js";
import { attach, refersTo, type ParentAttachment } from "./attach.js";
import type { BackendLookups } from "./backends.js";
import { planListeners, type GwCondition, type ListenerPlan } from "./listeners.js";
import { renderGateway } from "./render.js";
import { checkRender } from "./check.js";
import { resolvedRefs, unsupported } from "./rules.js";
import { mergeConditions } from "./status.js";
import { bindAddress, gatewayWorkload, managementPort } from "./workload.js";

/**
 * What the GatewayClass claims, and the suite then tests (sorted): the core features, and the
 * extended ones that passed the suite (conformance/gateway-http-extended-probe.yaml). Not claimed
 * while they fail there: GatewayHTTPListenerIsolation, GatewayRouteHostnameIntersectionPrecedence,
 * HTTPRouteBackendProtocolWebSocket. HTTPRouteMethodMatching failed the probe on its 404 for a
 * method mismatch (the data plane answered 405), which method_mismatch_status now renders.
 */
export const SUPPORTED_FEATURES = [
  "Gateway",
  "GatewayPort8080",
  "HTTPRoute",
  "HTTPRoute303RedirectStatusCode",
  "HTTPRoute307RedirectStatusCode",
  "HTTPRoute308RedirectStatusCode",
  "HTTPRouteMethodMatching",
  "HTTPRouteNamedRouteRule",
  "HTTPRouteParentRefPort",
  "HTTPRoutePathRedirect",
  "HTTPRoutePortRedirect",
  "HTTPRouteQueryParamMatching",
  "HTTPRouteResponseHeaderModification",
  "HTTPRouteSchemeRedirect",
  "ReferenceGrant",
];

type K<T> = T & KubernetesObject;
export interface GwCaches {
  classes: Cache<K<GatewayClass>>;
  gateways: Cache<K<Gateway>>;
  routes: Cache<K<HTTPRoute>>;
  grants: Cache<K<ReferenceGrant>>;
  services: Cache<V1Service>;
  slices: Cache<K<EndpointSliceLike>>;
  namespaces: Cache<KubernetesObject>;
  pipelines: Cache<K<HarmonyPipeline>>;
  configMaps: Cache<V1ConfigMap>;
}

export interface GwDeps extends WriteDeps {
  caches: GwCaches;
  logger: Logger;
  kube: KubeClients;
  manageWorkloads: boolean;
  /** Secrets as SecretLookup wants them, read on demand. */
  readSecrets: (refs: [string, string][]) => Promise<SecretLookup>;
  secretRecheckMs?: number;
}

export const ours = (deps: GwDeps, gw: Gateway) =>
  deps.caches.classes.get(gw.spec.gatewayClassName)?.spec.controllerName === CONTROLLER_NAME;

export async function reconcileClass(deps: GwDeps, name: string): Promise<{ requeueAfterMs?: number }> {
  const gc = deps.caches.classes.get(name);
  if (!gc || gc.spec.controllerName !== CONTROLLER_NAME) return {};
  const conditions = mergeConditions(
    gc.status?.conditions,
    [{ type: "Accepted", status: "True", reason: "Accepted", message: "served by the Harmony operator" }],
    gc.metadata.generation,
  );
  const status = { conditions, supportedFeatures: SUPPORTED_FEATURES.map((n) => ({ name: n })) };
  if (
    canonical(status) ===
    canonical({ conditions: gc.status?.conditions, supportedFeatures: gc.status?.supportedFeatures })
  )
    return {};
  await deps.kube.custom.patchClusterCustomObjectStatus(
    { group: GW_GROUP, version: GW_VERSION, plural: "gatewayclasses", name, body: { status } },
    mergePatch,
  );
  return {};
}

const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

function lookups(deps: GwDeps): BackendLookups {
  return {
    service: (ns, n) => deps.caches.services.get(n, ns),
    slices: (ns, svc) =>
      deps.caches.slices.list(ns).filter((s) => s.metadata?.labels?.["kubernetes.io/service-name"] === svc),
    grants: deps.caches.grants.list(),
  };
}

const nsLabels = (deps: GwDeps) => (ns: string) => deps.caches.namespaces.get(ns)?.metadata?.labels ?? undefined;
const pipelineLookup = (deps: GwDeps) => (ns: string, n: string) => deps.caches.pipelines.get(n, ns);

/** Each of this route's parentRefs to this Gateway, attached or not (not at all when the route is unsupported). */
function attachments(deps: GwDeps, route: HTTPRoute, gw: Gateway, plans: readonly ListenerPlan[]): ParentAttachment[] {
  const bad = unsupported(route);
  return (route.spec.parentRefs ?? [])
    .filter((ref) => refersTo(route, ref, gw))
    .map((ref) =>
      bad ? { parentRef: ref, accepted: bad, listeners: [] } : attach(route, ref, gw, plans, nsLabels(deps)),
    );
}

export async function reconcileGateway(deps: GwDeps, ns: string, name: string): Promise<{ requeueAfterMs?: number }> {
  const gw = deps.caches.gateways.get(name, ns);
  if (!gw || gw.metadata.deletionTimestamp || !ours(deps, gw)) return {};
  const certRefs = gw.spec.listeners.flatMap((l) =>
    (l.tls?.certificateRefs ?? []).map((r) => [r.namespace ?? ns, r.name] as [string, string]),
  );
  const routes = deps.caches.routes.list().filter((r) => (r.spec.parentRefs ?? []).some((p) => refersTo(r, p, gw)));
  const pipelineSecrets = routes.flatMap((r) =>
    (r.spec.rules ?? []).flatMap((rule) =>
      (rule.filters ?? []).flatMap((f) => {
        const p = f.extensionRef ? deps.caches.pipelines.get(f.extensionRef.name, r.metadata.namespace) : undefined;
        return (p?.spec.middleware ?? []).flatMap((m) =>
          (m.secretOptions ?? []).map((so) => [r.metadata.namespace ?? "", so.secretKeyRef.name] as [string, string]),
        );
      }),
    ),
  );
  const secrets = await deps.readSecrets([...certRefs, ...pipelineSecrets]);
  const plans = planListeners(gw, secrets, deps.caches.grants.list());
  const attached = routes
    .map((route) => ({ route, attachments: attachments(deps, route, gw, plans).filter((a) => a.listeners.length) }))
    .filter((r) => r.attachments.length);
  const rendered = renderGateway({
    gw,
    plans,
    routes: attached,
    backends: lookups(deps),
    pipelines: pipelineLookup(deps),
    secrets,
    bindAddress: bindAddress(gw),
    managementPort: managementPort(gw),
  });
  const source = gatewayWorkload(gw);
  const check = checkRender(rendered.files, rendered.secrets);
  if (check.errors.length === 0)
    await writeConfig(
      deps,
      source,
      { ...rendered, hash: check.hash },
      deps.caches.configMaps.get(configMapName(source), ns),
    );
  else
    deps.logger.warn("Gateway config refused by the data plane's checker", {
      gateway: `${ns}/${name}`,
      errors: check.errors,
    });
  let address: string | undefined;
  if (deps.manageWorkloads) {
    await applyWorkloads(deps, source, [], []);
    const svc = await deps.kube.core.readNamespacedService({ namespace: ns, name: workloadName(source) });
    address = svc.spec?.clusterIP && svc.spec.clusterIP !== "None" ? svc.spec.clusterIP : undefined;
  }

  const counts = new Map<string, number>();
  for (const r of attached)
    for (const l of new Set(r.attachments.flatMap((a) => a.listeners.map((x) => x.plan.listener.name))))
      counts.set(l, (counts.get(l) ?? 0) + 1);
  const gen = gw.metadata.generation;
  const listeners = plans.map((p) => {
    const prev = gw.status?.listeners?.find((s) => s.name === p.listener.name);
    return {
      name: p.listener.name,
      supportedKinds: p.supportedKinds,
      attachedRoutes: counts.get(p.listener.name) ?? 0,
      conditions: mergeConditions(prev?.conditions, p.conditions, gen),
    };
  });
  const served = plans.filter((p) => p.served).length;
  const accepted: GwCondition = plans.every((p) =>
    p.conditions.some((c) => c.type === "Accepted" && c.status === "True"),
  )
    ? { type: "Accepted", status: "True", reason: "Accepted", message: "all listeners accepted" }
    : {
        type: "Accepted",
        status: served ? "True" : "False",
        reason: "ListenersNotValid",
        message: "some listeners are not valid",
      };
  const programmed: GwCondition = check.errors.length
    ? {
        type: "Programmed",
        status: "False",
        reason: "Invalid",
        message: `config refused, the previous one keeps serving: ${check.errors.join("; ")}`,
      }
    : !deps.manageWorkloads || address
      ? { type: "Programmed", status: "True", reason: "Programmed", message: `config ${check.hash.slice(0, 12)}` }
      : {
          type: "Programmed",
          status: "False",
          reason: "AddressNotAssigned",
          message: "the Service has no cluster IP yet",
        };
  const status = {
    ...(address ? { addresses: [{ type: "IPAddress", value: address }] } : {}),
    conditions: mergeConditions(gw.status?.conditions, [accepted, programmed], gen),
    listeners,
  };
  if (
    canonical(status) !==
    canonical({
      ...(gw.status?.addresses ? { addresses: gw.status.addresses } : {}),
      conditions: gw.status?.conditions,
      listeners: gw.status?.listeners,
    })
  ) {
    await deps.kube.patchStatus(GW_GROUP, GW_VERSION, ns, "gateways", name, { status });
    deps.metrics?.writes("Gateway/status");
  }
  return certRefs.length || pipelineSecrets.length ? { requeueAfterMs: deps.secretRecheckMs ?? 60_000 } : {};
}

export async function reconcileRoute(deps: GwDeps, ns: string, name: string): Promise<{ requeueAfterMs?: number }> {
  const route = deps.caches.routes.get(name, ns);
  if (!route || route.metadata.deletionTimestamp) return {};
  const refs = resolvedRefs(route, lookups(deps), pipelineLookup(deps));
  const mine: RouteParentStatus[] = [];
  for (const ref of route.spec.parentRefs ?? []) {
    if ((ref.group ?? GW_GROUP) !== GW_GROUP || (ref.kind ?? "Gateway") !== "Gateway") continue;
    const gw = deps.caches.gateways.get(ref.name, ref.namespace ?? ns);
    if (!gw || !ours(deps, gw)) continue;
    // Certificates do not decide attachment: a listener whose Secret is missing still takes routes.
    const plans = planListeners(gw, () => undefined, []).map((p) => ({ ...p, served: p.acceptsRoutes }));
    const bad = unsupported(route);
    const a = bad ? { accepted: bad } : attach(route, ref, gw, plans, nsLabels(deps));
    const prev = route.status?.parents?.find(
      (p) => p.controllerName === CONTROLLER_NAME && canonical(p.parentRef) === canonical(ref),
    );
    mine.push({
      parentRef: ref,
      controllerName: CONTROLLER_NAME,
      conditions: mergeConditions(prev?.conditions, [a.accepted, refs], route.metadata.generation),
    });
  }
  const foreign = (route.status?.parents ?? []).filter((p) => p.controllerName !== CONTROLLER_NAME);
  const parents = [...foreign, ...mine];
  if (canonical(parents) === canonical(route.status?.parents ?? [])) return {};
  await deps.kube.patchStatus(GW_GROUP, GW_VERSION, ns, "httproutes", name, { status: { parents } });
  deps.metrics?.writes("HTTPRoute/status");
  return {};
}
