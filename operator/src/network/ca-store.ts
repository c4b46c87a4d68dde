/**
 * The network CA, kept in one Secret in the operator's namespace (never a ConfigMap, never logged),
 * and its rotation, a state machine stored on that Secret so a restarted or new leader resumes it:
 *
 *   stable ── spec.ca.rotation changes ──▶ bundle: new CA created; trust bundle = old + new;
 *                                          leaves still from the old CA (every peer learns the new CA first)
 *   bundle ── rotationPhaseSeconds ──────▶ leaves: new CA current; leaves re-issued from it;
 *                                          bundle = new + old (peers with old leaves still verify)
 *   leaves ── rotationPhaseSeconds ──────▶ stable: old CA leaves the bundle
 *
 * A CA past four fifths of its life starts the same rotation without a spec change.
 */
import { X509Certificate } from "node:crypto";
import { PatchStrategy, type V1Secret } from "@kubernetes/client-node";
import type { KubeClients } from "../provider/kube.js";
import type { HarmonyNetwork } from "../api/network.js";
import { createNetworkCa, fingerprint, type CaPair } from "./pki.js";

const ANN = "harmony.runbeam.io/";
export type Phase = "stable" | "bundle" | "leaves";

export interface CaState {
  /** The CA that issues leaves and signs the export. */
  current: CaPair;
  /** Every CA a member must trust now (PEM, concatenated). */
  bundlePem: string;
  fingerprint: string;
  phase: Phase;
  /** When the next rotation step is due (ms since epoch), if one is under way. */
  nextStepAt?: number;
}

export const caSecretName = (network: string) => `harmony-network-${network}-ca`;

const b64 = (s: string) => Buffer.from(s).toString("base64");
const text = (s: V1Secret | undefined, k: string) =>
  s?.data?.[k] !== undefined ? Buffer.from(s.data[k], "base64").toString("utf8") : undefined;

/** Reads the CA Secret, creates it or advances its rotation as due, and returns what to render. */
export async function ensureCa(
  kube: KubeClients,
  namespace: string,
  net: HarmonyNetwork,
  read: (namespace: string, name: string) => Promise<V1Secret | undefined>,
  now = Date.now(),
): Promise<CaState> {
  const name = net.metadata.name!;
  const ca = net.spec.ca ?? {};
  const days = ca.caValidityDays ?? 3650;
  const phaseMs = (ca.rotationPhaseSeconds ?? 300) * 1000;
  const wanted = ca.rotation ?? "";
  const s = await read(namespace, caSecretName(name));
  let cur = pair(s, "ca");
  let next = pair(s, "next");
  let previous = text(s, "previous.crt");
  let phase = (s?.metadata?.annotations?.[`${ANN}rotation-phase`] ?? "stable") as Phase;
  let since = Date.parse(s?.metadata?.annotations?.[`${ANN}rotation-since`] ?? "") || now;
  let applied = s?.metadata?.annotations?.[`${ANN}rotation`] ?? "";
  let changed = false;

  if (!cur) {
    cur = createNetworkCa(name, net.spec.domain, days, new Date(now));
    [next, previous, phase, applied, since, changed] = [undefined, undefined, "stable", wanted, now, true];
  } else if (phase === "stable" && (applied !== wanted || agedOut(cur.caPem, now))) {
    next = createNetworkCa(name, net.spec.domain, days, new Date(now));
    [phase, applied, since, changed] = ["bundle", wanted, now, true];
  } else if (phase === "bundle" && now - since >= phaseMs && next) {
    [previous, cur, next, phase, since, changed] = [cur.caPem, next, undefined, "leaves", now, true];
  } else if (phase === "leaves" && now - since >= phaseMs) {
    [previous, phase, since, changed] = [undefined, "stable", now, true];
  }
  if (changed) {
    await kube.objects.patch(
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name: caSecretName(name),
          namespace,
          labels: { "app.kubernetes.io/managed-by": "harmony-operator", [`${ANN}network`]: name },
          annotations: {
            [`${ANN}rotation`]: applied,
            [`${ANN}rotation-phase`]: phase,
            [`${ANN}rotation-since`]: new Date(since).toISOString(),
          },
        },
        type: "Opaque",
        // Server-side apply drops the keys this manager no longer sends (next.*, previous.crt).
        data: {
          "ca.crt": b64(cur.caPem),
          "ca.key": b64(cur.caKeyPem),
          ...(next ? { "next.crt": b64(next.caPem), "next.key": b64(next.caKeyPem) } : {}),
          ...(previous ? { "previous.crt": b64(previous) } : {}),
        },
      },
      undefined,
      undefined,
      "harmony-operator",
      true,
      PatchStrategy.ServerSideApply,
    );
  }
  const bundle = [cur.caPem, next?.caPem, previous].filter((p): p is string => Boolean(p));
  return {
    current: cur,
    bundlePem: bundle.map((p) => p.trim() + "\n").join(""),
    fingerprint: fingerprint(cur.caPem),
    phase,
    ...(phase !== "stable" ? { nextStepAt: since + phaseMs } : {}),
  };
}

/** A CA past four fifths of its life rotates by itself, long before anything it signed expires with it. */
function agedOut(caPem: string, now: number): boolean {
  const c = new X509Certificate(caPem);
  const from = Date.parse(c.validFrom);
  return now >= from + (Date.parse(c.validTo) - from) * 0.8;
}

function pair(s: V1Secret | undefined, prefix: string): CaPair | undefined {
  const caPem = text(s, `${prefix}.crt`);
  const caKeyPem = text(s, `${prefix}.key`);
  return caPem && caKeyPem ? { caPem, caKeyPem } : undefined;
}
