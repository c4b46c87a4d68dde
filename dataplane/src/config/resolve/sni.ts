/** The `sni` certificates of an HTTPS listener: each entry's pair read and checked to load together. */
import { createSecureContext } from "node:tls";
import type { BuildContext } from "../../plugins/types.js";
import type { ListenerSpec } from "./model.js";
import type { KeyPath } from "./report.js";

/** Each `sni` entry's pair, checked to load like cert_path/key_path; problems go to `at`, by path within `sni`. */
export function resolveSni(
  entries: { hostname: string; cert_path: string; key_path: string }[],
  ctx: BuildContext,
  at: (path: KeyPath, message: string) => void,
): NonNullable<ListenerSpec["sni"]> {
  const out: NonNullable<ListenerSpec["sni"]> = [];
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    const hostname = e.hostname.toLowerCase();
    if (seen.has(hostname)) return at([i, "hostname"], `"${hostname}" is listed twice`);
    seen.add(hostname);
    try {
      const pair = { cert: ctx.readFile(e.cert_path), key: ctx.readFile(e.key_path) };
      createSecureContext(pair);
      out.push({ hostname, certPath: ctx.resolvePath(e.cert_path), keyPath: ctx.resolvePath(e.key_path), ...pair });
    } catch (err) {
      at([i], `certificate and key do not load: ${(err as Error).message}`);
    }
  });
  return out;
}
