/**
 * HTTPS on gateway networks: each network's `tls.certificateRefs` names a kubernetes.io/tls Secret
 * in the gateway's namespace. Its tls.crt and tls.key are copied into the gateway's own Secret (the
 * one volume the data-plane pods mount) and the network's listener points at them. When the
 * source Secret is renewed, the copy changes, the kubelet swaps the mounted files, and the data
 * plane's listener picks the new pair up by itself (cert_reload_ms): no restart, no dropped
 * connection.
 *
 * A network whose Secret is missing, incomplete, unparsable or in another namespace is left out of
 * the config (never served without TLS) and reported; the other networks keep working.
 * Cross-namespace references are refused rather than allowed through a ReferenceGrant: the
 * operator reads only Secrets in the namespaces of the resources that name them, so a gateway
 * owner cannot make it copy another team's key into their own namespace.
 */
import { createSecureContext } from "node:tls";
import type { HarmonyGateway } from "../api/v1alpha1.js";
import { mountedPath, type SecretLookup } from "./file-options.js";

export interface TlsPlan {
  /** network → cert_path/key_path as the config names them. */
  listeners: Map<string, { cert_path: string; key_path: string }>;
  /** Networks left out, with why (for the gateway's ResolvedRefs condition). */
  unavailable: Map<string, { reason: string; message: string }>;
  /** Gateway Secret data for the listeners. */
  files: Record<string, Buffer>;
  /** Source Secret revisions, so a renewal changes the config hash and Ready tracks it. */
  revisions: string[];
}

/** Gateway Secret keys: a leading "_" cannot start a namespace, so no pipeline's keys collide. */
const certKey = (network: string) => `_tls.${network}.crt`;
const keyKey = (network: string) => `_tls.${network}.key`;

/** [namespace, name] of the Secrets the gateway's networks name (own namespace only). */
export function tlsSecretRefs(gw: HarmonyGateway): [string, string][] {
  const ns = gw.metadata.namespace ?? "";
  return gw.spec.networks.flatMap((n) =>
    (n.tls?.certificateRefs ?? [])
      .filter((r) => (r.namespace ?? ns) === ns)
      .map((r) => [ns, r.name] as [string, string]),
  );
}

export function planTls(gw: HarmonyGateway, secrets: SecretLookup): TlsPlan {
  const ns = gw.metadata.namespace ?? "";
  const plan: TlsPlan = { listeners: new Map(), unavailable: new Map(), files: {}, revisions: [] };
  for (const [i, n] of gw.spec.networks.entries()) {
    const ref = n.tls?.certificateRefs[0];
    if (!ref) continue;
    const at = `spec.networks[${i}].tls.certificateRefs[0]`;
    const refuse = (reason: string, message: string) =>
      plan.unavailable.set(n.name, { reason, message: `${at}: ${message}` });
    if ((ref.namespace ?? ns) !== ns) {
      refuse("RefNotPermitted", `Secret ${ref.namespace}/${ref.name} is in another namespace; only ${ns} is allowed`);
      continue;
    }
    if ((ref.kind ?? "Secret") !== "Secret" || (ref.group ?? "") !== "") {
      refuse("InvalidKind", `only core Secrets can hold certificates`);
      continue;
    }
    const found = secrets(ns, ref.name);
    if (!found) {
      refuse("InvalidCertificateRef", `Secret ${ns}/${ref.name} not found`);
      continue;
    }
    const cert = found.data["tls.crt"];
    const key = found.data["tls.key"];
    if (!cert?.length || !key?.length) {
      refuse("InvalidCertificateRef", `Secret ${ns}/${ref.name} has no ${cert?.length ? "tls.key" : "tls.crt"}`);
      continue;
    }
    try {
      // Parses both and checks that they belong together, as the listener will.
      createSecureContext({ cert, key });
    } catch (e) {
      // The library's message names the PEM problem, never the key material.
      refuse(
        "InvalidCertificateRef",
        `Secret ${ns}/${ref.name}: not a usable certificate and key (${(e as Error).message})`,
      );
      continue;
    }
    plan.files[certKey(n.name)] = cert;
    plan.files[keyKey(n.name)] = key;
    plan.revisions.push(`${ns}/${ref.name}@${found.revision}`);
    plan.listeners.set(n.name, {
      cert_path: mountedPath("cert_path", "secrets", certKey(n.name)),
      key_path: mountedPath("key_path", "secrets", keyKey(n.name)),
    });
  }
  return plan;
}
