/**
 * What makes a HarmonyGateway impossible to run, checked in code as well as by the CRD's CEL rules
 * (operator/src/api/v1alpha1.ts): a gateway stored before those rules existed gets a status that
 * says why, instead of a Deployment the API server refuses (a 422 retried forever, no status).
 */
import { isIP } from "node:net";
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { MANAGEMENT_NETWORK } from "./mounts.js";

/** The Deployment names each network's container port after its first 15 characters. */
export const portName = (network: string) => network.slice(0, 15);
/** IANA_SVC_NAME, which Kubernetes requires of container port names. */
const SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export function gatewaySpecIssues(gw: HarmonyGateway): string[] {
  const out: string[] = [];
  const mgmtPort = gw.spec.management?.port ?? 9090;
  const seen = new Map<string, number>();
  for (const [i, n] of gw.spec.networks.entries()) {
    const at = `spec.networks[${i}]`;
    if (n.name === MANAGEMENT_NETWORK) {
      out.push(`${at}.name: "${MANAGEMENT_NETWORK}" is reserved for the management listener`);
    }
    const pn = portName(n.name);
    if (!SVC_NAME.test(pn) || pn.includes("--")) {
      out.push(
        `${at}.name: the first 15 characters ("${pn}") name a container port: they need a letter, and no '--' or trailing '-'`,
      );
    }
    const other = seen.get(pn);
    if (other !== undefined)
      out.push(`${at}.name: its first 15 characters are those of spec.networks[${other}].name ("${pn}")`);
    else seen.set(pn, i);
    if (n.bindAddress !== undefined && !isIP(n.bindAddress)) {
      out.push(`${at}.bindAddress: "${n.bindAddress}" is not an IPv4 or IPv6 address`);
    }
    if (n.port === mgmtPort) out.push(`${at}.port: ${n.port} is the management port`);
  }
  return out;
}
