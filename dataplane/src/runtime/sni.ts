/**
 * Several certificates on one HTTPS listener, chosen by the client's SNI server name the way
 * Gateway API listeners choose: an exact name first, then the longest matching wildcard; no match
 * (or no SNI) gets the listener's own certificate. Each pair starts as the config build read it
 * (the API's revision, when that is the source) and is re-read when its files change; a pair that
 * stops loading keeps serving its previous version.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContext } from "node:tls";
import type { Logger } from "winston";
import type { ListenerSpec } from "../config/resolve.js";
import { hostMatches } from "../pipeline/route-match.js";

type Entry = NonNullable<ListenerSpec["sni"]>[number] & { context: SecureContext; digest: string };

export interface SniSelector {
  SNICallback(servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void;
  /** Re-reads every pair whose files changed (a pair that fails to load keeps its previous version). */
  reload(): void;
}

const digestOf = (e: { certPath: string; keyPath: string }) => {
  try {
    return createHash("sha256").update(readFileSync(e.certPath)).update(readFileSync(e.keyPath)).digest("hex");
  } catch {
    return "unreadable";
  }
};

export function sniSelector(list: NonNullable<ListenerSpec["sni"]>, logger: Logger, network: string): SniSelector {
  const load = (e: { certPath: string; keyPath: string }) =>
    createSecureContext({ cert: readFileSync(e.certPath), key: readFileSync(e.keyPath), minVersion: "TLSv1.2" });
  // Most specific first: exact names, then wildcards by length, so the first match is the answer.
  const entries: Entry[] = list
    .map((e) => ({
      ...e,
      context: createSecureContext({ cert: e.cert, key: e.key, minVersion: "TLSv1.2" }),
      digest: digestOf(e),
    }))
    .sort(
      (a, b) =>
        Number(a.hostname.startsWith("*.")) - Number(b.hostname.startsWith("*.")) ||
        b.hostname.length - a.hostname.length,
    );
  return {
    SNICallback(servername, cb) {
      const name = servername.toLowerCase().replace(/\.$/, "");
      const hit = entries.find((e) => hostMatches(e.hostname, name));
      cb(null, hit?.context); // undefined: the listener's default certificate
    },
    reload() {
      for (const e of entries) {
        const now = digestOf(e);
        if (now === e.digest) continue;
        e.digest = now;
        try {
          e.context = load(e);
          logger.info("TLS certificate reloaded", { network, cert: e.certPath, sni: e.hostname });
        } catch (err) {
          logger.error("TLS certificate not reloaded; the previous one stays in use", {
            network,
            cert: e.certPath,
            sni: e.hostname,
            error: (err as Error).message,
          });
        }
      }
    },
  };
}
