/**
 * Which requests management answers, by their Host and Origin headers.
 *
 * DNS rebinding: a page on evil.example re-resolves its own name to 127.0.0.1 and then reads (or
 * POSTs to) a loopback-only admin API as "same origin". The browser still sends Host:
 * evil.example, so on loopback only loopback names (and management.allowed_hosts) are answered.
 * Cross-site requests: a form on any site can POST to 127.0.0.1 without a preflight; the browser
 * marks it with an Origin header, and a state-changing request from a foreign origin is refused.
 */
import { isLoopbackIp } from "../runtime/loopback.js";

/** "Example.org:8080" → "example.org", "[::1]:9090" → "::1", "::1" → "::1": the name part of a host. */
export function hostnameOf(host: string): string {
  const h = host.trim().toLowerCase().replace(/\.$/, "");
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end < 0 ? h : h.slice(1, end);
  }
  const colon = h.indexOf(":");
  // More than one colon: a bare IPv6 literal (as written in config), not name:port.
  return colon >= 0 && h.indexOf(":", colon + 1) < 0 ? h.slice(0, colon) : h;
}

export interface HostPolicy {
  /** Management is bound to loopback addresses only. */
  loopback: boolean;
  /** management.allowed_hosts. */
  allowed: string[];
}

/** Methods that only read; any other one changes state and gets the Origin check. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function hostAllowed(policy: HostPolicy, hostname: string): boolean {
  if (policy.allowed.some((a) => hostnameOf(a) === hostname)) return true;
  return policy.loopback && (hostname === "localhost" || isLoopbackIp(hostname));
}

/**
 * Why this request must be refused, or undefined to let it through: 421 for a Host management does
 * not answer to, 403 for a state-changing request from a foreign origin.
 */
export function refuseByHost(
  policy: HostPolicy,
  method: string,
  host: string | undefined,
  origin: string | undefined,
): { status: 421 | 403; detail: string } | undefined {
  // The Host check applies on loopback (where rebinding is the threat) or when a list is configured.
  const checkHost = policy.loopback || policy.allowed.length > 0;
  if (checkHost && host !== undefined && !hostAllowed(policy, hostnameOf(host))) {
    return { status: 421, detail: "management does not answer to this Host (see management.allowed_hosts)" };
  }
  if (origin === undefined || SAFE_METHODS.has(method)) return undefined;
  let authority: string;
  try {
    authority = new URL(origin).host; // "null" and other opaque origins do not parse
  } catch {
    return { status: 403, detail: "state-changing requests from an opaque origin are refused" };
  }
  const sameOrigin = host !== undefined && authority === host.trim().toLowerCase();
  if (sameOrigin || (checkHost && hostAllowed(policy, hostnameOf(authority)))) return undefined;
  return { status: 403, detail: "state-changing requests from another origin are refused" };
}
