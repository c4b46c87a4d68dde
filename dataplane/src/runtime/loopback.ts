/**
 * Whether a bind address reaches this host only. Decided on the addresses it resolves to, not on
 * how it is spelled: "0:0:0:0:0:0:0:1" and "::ffff:127.0.0.1" are loopback, "fe80::1" and a host
 * name that merely ends in "localhost" are not unless they resolve there.
 */
import { lookup } from "node:dns/promises";
import { isIP, isIPv4 } from "node:net";

/** 127.0.0.0/8, ::1, and IPv4-mapped 127.x (::ffff:127.0.0.1), in any spelling `isIP` accepts. */
export function isLoopbackIp(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return address.split(".")[0] === "127";
  if (family !== 6) return false;
  const a = address.toLowerCase();
  const mapped = /^(?:0{0,4}:){0,5}ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a.replace(/^::/, "0:"));
  if (mapped && isIPv4(mapped[1]!)) return isLoopbackIp(mapped[1]!);
  return expand(a) === "0000:0000:0000:0000:0000:0000:0000:0001";
}

/** The eight groups of an IPv6 address, zero-padded (no IPv4 tail: callers handled that). */
function expand(a: string): string | undefined {
  if (a.includes(".")) return undefined;
  const [head, tail] = a.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.map((g) => g.padStart(4, "0")).join(":");
}

/**
 * True when every address `bindAddress` stands for is loopback. A name that does not resolve is
 * not loopback (the safe answer: the admin API then asks for a token).
 */
export async function isLoopbackAddress(bindAddress: string): Promise<boolean> {
  if (isIP(bindAddress)) return isLoopbackIp(bindAddress);
  try {
    const all = await lookup(bindAddress, { all: true });
    return all.length > 0 && all.every((a) => isLoopbackIp(a.address));
  } catch {
    return false;
  }
}
