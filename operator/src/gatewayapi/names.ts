/**
 * Names of what the operator makes for a Gateway API Gateway. A Gateway's name may be a 253-char
 * DNS subdomain with dots; a Service name is a DNS-1035 label (63, no dots) and a label value has 63
 * characters, so children are named from a `base` that is the name itself when it fits, else a
 * readable prefix and a hash of the whole name (GatewayNameMaximumLength).
 */
import { createHash } from "node:crypto";

/** Longest base: "<base>-harmony-config" must stay a DNS label too (63). */
const MAX_BASE = 40;

export function childBase(name: string): string {
  if (name.length <= MAX_BASE && /^[a-z]([a-z0-9-]*[a-z0-9])?$/.test(name)) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 8);
  const readable = name
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/^[^a-z]+/, "")
    .slice(0, MAX_BASE - 12)
    .replace(/-+$/, "");
  return `gw-${readable ? `${readable}-` : ""}${hash}`;
}

/** The data plane's network for one Gateway port. */
export const networkName = (port: number) => `l${port}`;

/**
 * The port the data plane binds for a listener port: the pods run as non-root without
 * NET_BIND_SERVICE, so a privileged port (80, 443) is served on 10000+port behind the Service's port.
 */
export const containerPort = (port: number) => (port < 1024 ? 10000 + port : port);
