/** A Gateway API Gateway as the neutral workload description HarmonyGateways use too. */
import type { Gateway } from "../api/gateway-api.js";
import { GW_GROUP, GW_VERSION } from "../api/gateway-api.js";
import type { WorkloadSource } from "../translator/workload.js";
import { childBase, containerPort, networkName } from "./names.js";

/** Selects a Gateway API Gateway's pods; not GATEWAY_LABEL, so a HarmonyGateway of the same name never shares them. */
export const K8S_GATEWAY_LABEL = "harmony.runbeam.io/k8s-gateway";
/** Gateway annotations (README: Gateway API): the data plane's management port and listener bind address. */
export const MANAGEMENT_PORT_ANNOTATION = "harmony.runbeam.io/management-port";
export const BIND_ADDRESS_ANNOTATION = "harmony.runbeam.io/bind-address";

export function managementPort(gw: Gateway): number {
  const v = Number(gw.metadata.annotations?.[MANAGEMENT_PORT_ANNOTATION]);
  return Number.isInteger(v) && v > 0 && v < 65536 ? v : 9090;
}

export const bindAddress = (gw: Gateway) => gw.metadata.annotations?.[BIND_ADDRESS_ANNOTATION] || "0.0.0.0";

export function gatewayWorkload(gw: Gateway): WorkloadSource {
  const ports = [...new Set(gw.spec.listeners.map((l) => l.port))].sort((a, b) => a - b);
  return {
    owner: {
      apiVersion: `${GW_GROUP}/${GW_VERSION}`,
      kind: "Gateway",
      name: gw.metadata.name,
      uid: gw.metadata.uid ?? "",
    },
    namespace: gw.metadata.namespace ?? "",
    base: childBase(gw.metadata.name),
    selectorKey: K8S_GATEWAY_LABEL,
    ports: ports.map((p) => ({ name: networkName(p), port: p, targetPort: containerPort(p) })),
    spec: { management: { port: managementPort(gw) } },
  };
}
