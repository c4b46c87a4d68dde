/**
 * The client's address, and CIDR matching. Behind a load balancer the socket peer is the balancer;
 * the client is the right-most X-Forwarded-For entry that is not a trusted proxy (anything left of
 * that was written by the client and proves nothing).
 */
import { BlockList, isIP } from "node:net";

export function cidrList(cidrs: readonly string[]): { list: BlockList; bad: string[] } {
  const list = new BlockList();
  const bad: string[] = [];
  for (const c of cidrs) {
    const [addr, bits] = c.trim().split("/");
    const family = isIP(addr ?? "");
    if (!family) {
      bad.push(c);
      continue;
    }
    const type = family === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) list.addAddress(addr!, type);
    else {
      const n = Number(bits);
      if (!Number.isInteger(n) || n < 0 || n > (family === 6 ? 128 : 32)) bad.push(c);
      else list.addSubnet(addr!, n, type);
    }
  }
  return { list, bad };
}

/** An IPv4-mapped IPv6 address (::ffff:1.2.3.4) is the IPv4 address it carries. */
export function normalizeIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

export function matches(list: BlockList, ip: string): boolean {
  const a = normalizeIp(ip);
  const family = isIP(a);
  return family !== 0 && list.check(a, family === 6 ? "ipv6" : "ipv4");
}

export function clientIp(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: BlockList | undefined,
): string {
  let ip = normalizeIp(socketAddress ?? "");
  if (!trusted || !forwardedFor) return ip;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor)
    .split(",")
    .map((s) => normalizeIp(s.trim()))
    .filter(Boolean);
  while (matches(trusted, ip) && hops.length) {
    const next = hops.pop()!;
    if (!isIP(next)) break;
    ip = next;
  }
  return ip;
}
