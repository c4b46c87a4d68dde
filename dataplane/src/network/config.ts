/**
 * `[harmony_networks.*]`: loads each network's identity certificate and key, trust bundle and
 * directory, checks they fit together, and compiles the directory's policies. Runs as part of
 * every config build, so a file that changes (the gateway watches them all) rebuilds the
 * generation, and a file that does not load fails that reload with a problem naming it while the
 * last good generation keeps serving.
 */
import { createSecureContext } from "node:tls";
import type { HarmonyNetworkSection } from "../config/schema.js";
import { parseDirectory, type Directory } from "./directory.js";
import { ownIdentity, type Identity } from "./identity.js";
import { compilePolicy, type CompiledPolicy } from "./policy.js";
import { parseTrustBundle, trustedDomains, type TrustAnchor } from "./trust.js";

export interface HarmonyNetwork {
  name: string;
  domain: string;
  org: string;
  /** Absolute paths. */
  certPath: string;
  keyPath: string;
  bundlePath: string;
  directoryPath: string;
  exportPath: string | undefined;
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  /** The bundle's CAs with the orgs each may vouch for (network/trust.ts). */
  trust: TrustAnchor[];
  /** Trust domains peer identities are read in: ours and those the bundle's CAs are bound to. */
  domains: ReadonlySet<string>;
  identity: Identity;
  directory: Directory;
  policy: CompiledPolicy;
}

export interface NetworkProblem {
  path: (string | number)[];
  message: string;
}

export interface FileAccess {
  readFile(p: string): Buffer;
  resolvePath(p: string): string;
}

export function loadHarmonyNetworks(
  sections: Record<string, HarmonyNetworkSection>,
  fs: FileAccess,
): { networks: Map<string, HarmonyNetwork>; problems: NetworkProblem[] } {
  const networks = new Map<string, HarmonyNetwork>();
  const problems: NetworkProblem[] = [];
  const domains = new Map<string, string>();
  for (const [name, s] of Object.entries(sections)) {
    const at = (key: string, message: string) => problems.push({ path: ["harmony_networks", name, key], message });
    const read = (key: "cert_path" | "key_path" | "trust_bundle_path" | "directory_path") => {
      if (typeof s[key] !== "string") return undefined; // missing or not a path: the schema reports it
      try {
        return fs.readFile(s[key]);
      } catch (e) {
        at(key, `cannot read ${fs.resolvePath(s[key])}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        return undefined;
      }
    };
    const other = domains.get(s.domain);
    if (other) at("domain", `domain "${s.domain}" is also the domain of harmony_networks.${other}`);
    domains.set(s.domain, name);
    const cert = read("cert_path");
    const key = read("key_path");
    const ca = read("trust_bundle_path");
    const dirText = read("directory_path");
    let identity: Identity | undefined;
    if (cert && key) {
      try {
        createSecureContext({ cert, key });
        identity = ownIdentity(cert, s.domain);
        if (!identity)
          at(
            "cert_path",
            `${fs.resolvePath(s.cert_path)} has no URI SAN spiffe://${s.domain}/org/<org>/gateway/<name>`,
          );
        else if (identity.org !== s.org) {
          at("cert_path", `${fs.resolvePath(s.cert_path)} is for org "${identity.org}", not "${s.org}"`);
          identity = undefined;
        }
      } catch (e) {
        at("key_path", `${fs.resolvePath(s.cert_path)} and ${fs.resolvePath(s.key_path)}: ${(e as Error).message}`);
      }
    }
    let trust: TrustAnchor[] = [];
    if (ca) {
      try {
        trust = parseTrustBundle(ca.toString("utf8"), s.domain);
        if (!trust.length) at("trust_bundle_path", `${fs.resolvePath(s.trust_bundle_path)} holds no PEM certificate`);
      } catch (e) {
        at("trust_bundle_path", `${fs.resolvePath(s.trust_bundle_path)}: ${(e as Error).message}`);
      }
    }
    let directory: Directory | undefined;
    if (dirText) {
      try {
        directory = parseDirectory(dirText.toString("utf8"), { network: name, domain: s.domain });
      } catch (e) {
        at("directory_path", `${fs.resolvePath(s.directory_path)}: ${(e as Error).message}`);
      }
    }
    if (!cert || !key || !ca || !trust.length || !identity || !directory) continue;
    networks.set(name, {
      name,
      domain: s.domain,
      org: s.org,
      certPath: fs.resolvePath(s.cert_path),
      keyPath: fs.resolvePath(s.key_path),
      bundlePath: fs.resolvePath(s.trust_bundle_path),
      directoryPath: fs.resolvePath(s.directory_path),
      exportPath: s.export_path ? fs.resolvePath(s.export_path) : undefined,
      cert,
      key,
      ca,
      trust,
      domains: trustedDomains(trust, s.domain),
      identity,
      directory,
      policy: compilePolicy(directory.doc.policies ?? []),
    });
  }
  return { networks, problems };
}

/**
 * The network a harmony:// URI is reached through: the one with that domain; else (a federated
 * peer network of another trust domain) one whose directory holds the URI; else one whose trust
 * bundle is bound to that domain (its directory does not hold the URI yet).
 */
export function networkForUri(networks: ReadonlyMap<string, HarmonyNetwork>, uri: string): HarmonyNetwork | undefined {
  const m = /^harmony:\/\/([^/]+)\//.exec(uri);
  if (!m) return undefined;
  const all = [...networks.values()];
  return (
    all.find((n) => n.domain === m[1]) ??
    all.find((n) => n.directory.byUri.has(uri)) ??
    all.find((n) => n.domains.has(m[1]!))
  );
}
