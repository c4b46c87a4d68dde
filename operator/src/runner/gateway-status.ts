/** Parts of a HarmonyGateway's status that need more than the render: certificate refs, replicas. */
import type { V1Deployment } from "@kubernetes/client-node";
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { workloadName } from "../translator/workload.js";
import type { DesiredCondition } from "./conditions.js";
import { ADDRESS_ANNOTATION } from "../network/directory.js";
import type { NetworkRegistry } from "../network/state.js";
import type { ReconcilerDeps } from "./reconciler-deps.js";

/** ResolvedRefs: every network's certificate can be used, or which networks are left out and why. */
export function networkRefsCondition(
  unavailable: ReadonlyMap<string, { reason: string; message: string }>,
): DesiredCondition {
  if (unavailable.size === 0)
    return { type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "all references found" };
  const all = [...unavailable.entries()];
  return {
    type: "ResolvedRefs",
    status: "False",
    // One reason for the condition: the first network's (the message names each).
    reason: all[0]![1].reason,
    message: all.map(([n, u]) => `network "${n}" not served: ${u.message}`).join("; "),
  };
}

/**
 * NetworkReachable, for Sidecar-mode gateways only (the one mode that can lack an address): False
 * while a network leaves its endpoints out of the directory for want of the address annotation
 * (network/directory.ts localEntries), True once it has one or serves no network; left off a
 * Sidecar gateway that never had it. Deployment-mode gateways are always reachable at their Service.
 */
export function networkReachableCondition(
  gw: HarmonyGateway,
  registry: NetworkRegistry | undefined,
): DesiredCondition | undefined {
  if ((gw.spec.mode ?? "Deployment") !== "Sidecar") return undefined;
  const id = `${gw.metadata.namespace}/${gw.metadata.name}`;
  const skipped = (registry?.all() ?? []).flatMap((rt) =>
    rt.skipped.filter((m) => m.kind === "HarmonyGateway" && m.name === id),
  );
  if (skipped.length)
    return {
      type: "NetworkReachable",
      status: "False",
      reason: "NoNetworkAddress",
      message: skipped.map((m) => m.message).join("; "),
    };
  const address = gw.metadata.annotations?.[ADDRESS_ANNOTATION];
  const had = gw.status?.conditions?.some((c) => c.type === "NetworkReachable");
  if (!address && !had) return undefined;
  return {
    type: "NetworkReachable",
    status: "True",
    reason: address ? "AddressAnnotated" : "NoEndpointsListed",
    message: address
      ? `peers dial ${address} (${ADDRESS_ANNOTATION})`
      : "no endpoint of this gateway is listed in a network directory",
  };
}

/**
 * How many pods Ready waits for in Deployment mode: spec.replicas when the gateway sets it, else
 * what the Deployment itself asks for, which a HorizontalPodAutoscaler (or kubectl scale) owns
 * when spec.replicas is unset.
 */
export async function wantedReplicas(deps: ReconcilerDeps, gw: HarmonyGateway): Promise<number> {
  // Without workloads to manage the operator has no access to Deployments (and made none).
  if (gw.spec.replicas !== undefined || !deps.manageWorkloads) return gw.spec.replicas ?? 1;
  const d = await deps.kube.objects
    .read<V1Deployment>({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: workloadName(gw), namespace: gw.metadata.namespace! },
    })
    .catch((e: unknown) => {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    });
  return d?.spec?.replicas ?? 1;
}
