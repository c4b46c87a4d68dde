/**
 * spec.ca.mode CertManager: each member gateway's workload certificate is a cert-manager
 * `Certificate` in its org's namespace (owned by the gateway), and the operator builds the
 * gateway's network files from the Secret cert-manager fills (tls.crt, tls.key, ca.crt). The
 * issuer's CA (ca.crt) becomes the local CA of the trust bundle, still scoped to the local orgs by
 * trust-bundle.ts. cert-manager issues and renews (privateKey rotationPolicy Always: a new key with
 * every certificate); the operator only reads, so a renewal reaches the data plane as the next
 * network reconcile's new files (the data plane hot-reloads them).
 *
 * No informer on Certificates: the operator must start where cert-manager is not installed (an
 * informer on a kind the API server does not serve never syncs, and /readyz waits on every one).
 * The network reconcile lists its Certificates instead, once every spec.syncIntervalSeconds.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { PatchStrategy, type V1Secret } from "@kubernetes/client-node";
import type { HarmonyGateway } from "../api/v1alpha1.js";
import type { HarmonyNetwork } from "../api/network.js";
import type { KubeClients } from "../provider/kube.js";
import { ownerReference } from "../translator/workload.js";
import { spiffeId, type Leaf } from "./pki.js";

export const CM_GROUP = "cert-manager.io";
export const CM_VERSION = "v1";
const NETWORK_LABEL = "harmony.runbeam.io/network";
const GATEWAY_LABEL = "harmony.runbeam.io/gateway";
const MANAGED = { "app.kubernetes.io/managed-by": "harmony-operator" };
/** cert-manager refuses a duration under an hour. */
const MIN_DURATION_S = 3600;

/** The Certificate of a gateway in a network, and the Secret cert-manager fills for it. */
export const certificateName = (network: string, gw: string) => `${gw}-harmony-${network}`;
export const certSecretName = (network: string, gw: string) => `${gw}-harmony-${network}-tls`;

export interface CertificateView {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

export interface CertManagerState {
  /** "namespace/name" of a member gateway → its leaf (chain) and key, for those that have one. */
  leaves: Map<string, Leaf>;
  /** The issuer CAs of every member's Secret (ca.crt), each once, sorted: the local CA of the bundle. */
  bundlePem: string;
  /** Gateways whose Certificate is not Ready, with cert-manager's reason and message. */
  notReady: { gateway: string; certificate: string; message: string }[];
}

/** The Certificate the operator wants for a member gateway (what server-side apply sends). */
export function desiredCertificate(net: HarmonyNetwork, gw: HarmonyGateway) {
  const network = net.metadata.name!;
  const name = gw.metadata.name!;
  const ref = net.spec.ca!.certManager!.issuerRef;
  // Renewed at two thirds of its life, as the operator's own leaves are.
  const duration = Math.max(net.spec.ca?.leafValiditySeconds ?? 2_592_000, MIN_DURATION_S);
  return {
    apiVersion: `${CM_GROUP}/${CM_VERSION}`,
    kind: "Certificate",
    metadata: {
      name: certificateName(network, name),
      namespace: gw.metadata.namespace!,
      labels: { ...MANAGED, [NETWORK_LABEL]: network, [GATEWAY_LABEL]: name },
      ownerReferences: [ownerReference(gw)],
    },
    spec: {
      secretName: certSecretName(network, name),
      secretTemplate: { labels: { ...MANAGED, [NETWORK_LABEL]: network, [GATEWAY_LABEL]: name } },
      // The identity is the URI SAN alone (no subject, no DNS name), as with the operator's CA.
      uris: [spiffeId(net.spec.domain, gw.metadata.namespace!, name)],
      duration: `${duration}s`,
      renewBefore: `${Math.floor(duration / 3)}s`,
      privateKey: { algorithm: "ECDSA", size: 256, encoding: "PKCS8", rotationPolicy: "Always" },
      usages: ["digital signature", "server auth", "client auth"],
      issuerRef: { name: ref.name, kind: ref.kind, group: ref.group ?? CM_GROUP },
    },
  };
}

export interface CertManagerDeps {
  kube: KubeClients;
  readSecret: (namespace: string, name: string) => Promise<V1Secret | undefined>;
}

/**
 * Makes every member gateway's Certificate what it should be (created or patched only when it
 * differs), removes the network's Certificates of gateways that left, and reads the Secrets.
 */
export async function syncCertificates(
  deps: CertManagerDeps,
  net: HarmonyNetwork,
  gateways: readonly HarmonyGateway[],
  now = new Date(),
): Promise<CertManagerState> {
  const network = net.metadata.name!;
  const state: CertManagerState = { leaves: new Map(), bundlePem: "", notReady: [] };
  let existing: CertificateView[];
  try {
    existing = await listCertificates(deps.kube, network);
  } catch (e) {
    const message = notServed(e)
      ? `the API server does not serve ${CM_GROUP}/${CM_VERSION} Certificates: is cert-manager installed?`
      : `listing Certificates failed: ${(e as Error).message}`;
    for (const gw of gateways)
      state.notReady.push({ gateway: id(gw), certificate: certificateName(network, gw.metadata.name!), message });
    return state;
  }
  const byKey = new Map(existing.map((c) => [`${c.metadata.namespace}/${c.metadata.name}`, c]));
  const wanted = new Set<string>();
  const cas = new Set<string>();
  for (const gw of gateways) {
    const want = desiredCertificate(net, gw);
    const key = `${want.metadata.namespace}/${want.metadata.name}`;
    wanted.add(key);
    const have = byKey.get(key);
    if (!have || !sameSpec(have.spec, want.spec)) await apply(deps.kube, want);
    const ready = have?.status?.conditions?.find((c) => c.type === "Ready");
    if (ready?.status !== "True")
      state.notReady.push({
        gateway: id(gw),
        certificate: key,
        message: ready
          ? `${ready.reason ?? "NotReady"}: ${ready.message ?? ""}`.trim() + (await requestMessage(deps.kube, have!))
          : have
            ? "cert-manager has not reported on it yet (is cert-manager running?)"
            : "created; waiting for cert-manager",
      });
    // A leaf already in the Secret keeps serving while cert-manager re-issues (Ready may be False then).
    const secret = await deps.readSecret(want.metadata.namespace, want.spec.secretName);
    const leaf = leafOf(secret, want.spec.secretName, want.spec.uris[0]!, now);
    if (typeof leaf === "string") {
      if (ready?.status === "True") state.notReady.push({ gateway: id(gw), certificate: key, message: leaf });
      continue;
    }
    state.leaves.set(id(gw), { certPem: leaf.certPem, keyPem: leaf.keyPem });
    for (const pem of leaf.cas) cas.add(pem);
  }
  for (const c of existing) {
    if (!wanted.has(`${c.metadata.namespace}/${c.metadata.name}`)) await deleteCertificate(deps.kube, c);
  }
  state.bundlePem = [...cas].sort().join("");
  return state;
}

/** Removes every Certificate the operator made for `network` (deleted, or no longer CertManager). */
export async function removeCertificates(kube: KubeClients, network: string): Promise<void> {
  const all = await listCertificates(kube, network).catch(() => []);
  for (const c of all) await deleteCertificate(kube, c);
}

const id = (gw: HarmonyGateway) => `${gw.metadata.namespace}/${gw.metadata.name}`;

const BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The leaf a cert-manager Secret holds, if it serves this gateway: the URI SAN it must carry, its
 * key, not expired, and an issuer CA (ca.crt) that signed it. Otherwise why not (for the status).
 */
export function leafOf(
  s: V1Secret | undefined,
  name: string,
  uri: string,
  now: Date,
): { certPem: string; keyPem: string; cas: string[] } | string {
  const get = (k: string) => (s?.data?.[k] ? Buffer.from(s.data[k], "base64").toString("utf8") : undefined);
  const certPem = get("tls.crt");
  const keyPem = get("tls.key");
  const caPem = get("ca.crt");
  if (!s) return `Secret ${name} not written yet`;
  if (!certPem || !keyPem) return `Secret ${name} has no tls.crt or tls.key yet`;
  if (!caPem) return `Secret ${name} has no ca.crt: the issuer must publish its CA`;
  try {
    const cert = new X509Certificate(certPem);
    if (!cert.subjectAltName?.split(", ").includes(`URI:${uri}`)) return `Secret ${name}: tls.crt does not name ${uri}`;
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return `Secret ${name}: tls.key does not match`;
    if (now.getTime() >= Date.parse(cert.validTo)) return `Secret ${name}: tls.crt has expired`;
    const cas = [...caPem.matchAll(BLOCK)].map(([b]) => new X509Certificate(b));
    if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey)))
      return `Secret ${name}: ca.crt did not issue tls.crt`;
    return { certPem, keyPem, cas: cas.map((c) => c.toString().trim() + "\n") };
  } catch (e) {
    return `Secret ${name} does not parse: ${(e as Error).message}`;
  }
}

/** Compares what the operator sets (cert-manager adds defaults of its own to the stored spec). */
function sameSpec(have: Record<string, unknown> | undefined, want: Record<string, unknown>): boolean {
  if (!have) return false;
  return Object.entries(want).every(([k, v]) => JSON.stringify(pick(have[k], v)) === JSON.stringify(v));
}
/** `have` reduced to the keys `want` has (recursively for objects). */
function pick(have: unknown, want: unknown): unknown {
  if (!want || typeof want !== "object" || Array.isArray(want) || !have || typeof have !== "object") return have;
  return Object.fromEntries(
    Object.keys(want).map((k) => [k, pick((have as Record<string, unknown>)[k], (want as Record<string, unknown>)[k])]),
  );
}

/**
 * What the Certificate's newest CertificateRequest says when it is not Ready: where cert-manager
 * puts the issuer's own answer ("Referenced "Issuer" not found", a signing error), which the
 * Certificate's condition does not repeat. Empty when there is none or it cannot be read.
 */
async function requestMessage(kube: KubeClients, c: CertificateView): Promise<string> {
  try {
    const list = (await kube.custom.listNamespacedCustomObject({
      group: CM_GROUP,
      version: CM_VERSION,
      namespace: c.metadata.namespace,
      plural: "certificaterequests",
    })) as {
      items?: (CertificateView & { metadata: { annotations?: Record<string, string>; creationTimestamp?: string } })[];
    };
    const mine = (list.items ?? [])
      .filter((r) => r.metadata.annotations?.["cert-manager.io/certificate-name"] === c.metadata.name)
      .sort((a, b) => (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? ""));
    const cond = mine.at(-1)?.status?.conditions?.find((x) => x.type === "Ready");
    return cond && cond.status !== "True"
      ? ` (CertificateRequest ${mine.at(-1)!.metadata.name}: ${cond.reason ?? ""}: ${cond.message ?? ""})`
      : "";
  } catch {
    return "";
  }
}

async function listCertificates(kube: KubeClients, network: string): Promise<CertificateView[]> {
  const list = (await kube.custom.listCustomObjectForAllNamespaces({
    group: CM_GROUP,
    version: CM_VERSION,
    plural: "certificates",
    labelSelector: `${NETWORK_LABEL}=${network},app.kubernetes.io/managed-by=harmony-operator`,
  })) as { items?: CertificateView[] };
  return list.items ?? [];
}

async function apply(kube: KubeClients, obj: object): Promise<void> {
  await kube.objects.patch(obj, undefined, undefined, "harmony-operator", true, PatchStrategy.ServerSideApply);
}

async function deleteCertificate(kube: KubeClients, c: CertificateView): Promise<void> {
  await kube.custom
    .deleteNamespacedCustomObject({
      group: CM_GROUP,
      version: CM_VERSION,
      namespace: c.metadata.namespace,
      plural: "certificates",
      name: c.metadata.name,
    })
    .catch((e: unknown) => {
      if ((e as { code?: number }).code !== 404) throw e;
    });
}

const notServed = (e: unknown) => (e as { code?: number }).code === 404;
