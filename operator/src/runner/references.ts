/**
 * The Secrets and ConfigMaps a gateway's render needs, read one by one at render time: the
 * operator holds none it does not use, and needs no list or watch on either (a ConfigMap informer
 * would hold every ConfigMap in its namespaces; the cache it has is for its own, label-selected).
 * Changes to them are seen by reading again (ReconcilerDeps.secretRecheckMs).
 */
import type { V1ConfigMap, V1Secret } from "@kubernetes/client-node";
import type { HarmonyGateway, HarmonyPipeline } from "../api/v1alpha1.js";
import { referencedConfigMaps, type ConfigMapLookup, type SecretLookup } from "../translator/file-options.js";
import { tlsSecretRefs } from "../translator/gateway-tls.js";

export interface References {
  secrets: SecretLookup;
  configMaps: ConfigMapLookup;
  /** Whether anything was read that may change without an event the operator sees. */
  any: boolean;
}

/** [namespace, name] of every Secret the pipelines' secretOptions and fileOptions name, once each. */
export function referencedSecrets(pipelines: readonly HarmonyPipeline[]): [string, string][] {
  const keys = new Set<string>();
  for (const p of pipelines) {
    for (const part of [...(p.spec.middleware ?? []), ...p.spec.backends]) {
      for (const so of part.secretOptions ?? []) keys.add(`${p.metadata.namespace}/${so.secretKeyRef.name}`);
      for (const fo of part.fileOptions ?? [])
        if (fo.secretKeyRef) keys.add(`${p.metadata.namespace}/${fo.secretKeyRef.name}`);
    }
  }
  return [...keys].sort().map((k) => k.split("/") as [string, string]);
}

const revision = (m: { uid?: string; resourceVersion?: string } | undefined) =>
  `${m?.uid ?? ""}/${m?.resourceVersion ?? ""}`;

export async function readReferences(
  gw: HarmonyGateway,
  pipelines: readonly HarmonyPipeline[],
  read: {
    secret: (namespace: string, name: string) => Promise<V1Secret | undefined>;
    configMap: (namespace: string, name: string) => Promise<V1ConfigMap | undefined>;
  },
): Promise<References> {
  const uniq = (refs: [string, string][]) => [...new Map(refs.map((r) => [r.join("/"), r])).values()];
  const secretRefs = uniq([...referencedSecrets(pipelines), ...tlsSecretRefs(gw)]);
  const cmRefs = uniq(referencedConfigMaps(pipelines));
  const [secrets, configMaps] = await Promise.all([
    Promise.all(secretRefs.map(async ([ns, n]) => [`${ns}/${n}`, await read.secret(ns, n)] as const)),
    Promise.all(cmRefs.map(async ([ns, n]) => [`${ns}/${n}`, await read.configMap(ns, n)] as const)),
  ]);
  const s = new Map(secrets);
  const c = new Map(configMaps);
  return {
    any: secretRefs.length + cmRefs.length > 0,
    secrets: (ns, n) => {
      const found = s.get(`${ns}/${n}`);
      if (!found) return undefined;
      return {
        data: Object.fromEntries(Object.entries(found.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")])),
        revision: revision(found.metadata),
      };
    },
    configMaps: (ns, n) => {
      const found = c.get(`${ns}/${n}`);
      return found ? { data: { ...(found.data ?? {}) }, revision: revision(found.metadata) } : undefined;
    },
  };
}
