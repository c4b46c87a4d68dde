/**
 * The MutatingWebhookConfiguration the operator applies (server-side apply, forced): the operator
 * owns it, so failure policy and namespace selector follow its flags and the caBundle follows the
 * CA in its Secret, with no separate step to keep in sync.
 */
import type { V1LabelSelector, V1LabelSelectorRequirement } from "@kubernetes/client-node";
import { GROUP, VERSION } from "../api/v1alpha1.js";
import { GATEWAY_LABEL, MANAGED_BY } from "../translator/workload.js";

export const WEBHOOK_NAME = "sidecar.harmony.runbeam.io";
export const WEBHOOK_PATH = "/mutate-v1-pod";
export const VALIDATING_WEBHOOK_NAME = "validate.harmony.runbeam.io";
export const VALIDATE_PATH = "/validate-harmony-v1alpha1";

export type FailurePolicy = "Fail" | "Ignore";

export interface WebhookTarget {
  /** clientConfig.url (out-of-cluster, tests); otherwise `service`. */
  url?: string;
  service?: { namespace: string; name: string; port: number };
}

export function webhookConfiguration(o: {
  name: string;
  caPem: string;
  target: WebhookTarget;
  failurePolicy: FailurePolicy;
  namespaceSelector: V1LabelSelector;
  timeoutSeconds?: number;
}): Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
} {
  const caBundle = Buffer.from(o.caPem).toString("base64");
  const clientConfig = o.target.url
    ? { url: o.target.url, caBundle }
    : { service: { ...o.target.service!, path: WEBHOOK_PATH }, caBundle };
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "MutatingWebhookConfiguration",
    metadata: { name: o.name, labels: { "app.kubernetes.io/managed-by": MANAGED_BY } },
    webhooks: [
      {
        name: WEBHOOK_NAME,
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        failurePolicy: o.failurePolicy,
        matchPolicy: "Equivalent",
        reinvocationPolicy: "Never",
        timeoutSeconds: o.timeoutSeconds ?? 10,
        clientConfig,
        rules: [
          { operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"], scope: "Namespaced" },
        ],
        namespaceSelector: o.namespaceSelector,
        // Only pods that ask for a gateway reach the webhook, so failurePolicy Fail cannot block
        // anyone else; the operator's own gateway pods carry the label but must not get a second
        // data plane.
        objectSelector: {
          matchExpressions: [
            { key: GATEWAY_LABEL, operator: "Exists" },
            { key: "app.kubernetes.io/managed-by", operator: "NotIn", values: [MANAGED_BY] },
          ],
        },
      },
    ],
  };
}

const KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/**
 * A kubectl-style label selector ("a=b,c!=d,e in (x,y),f notin (z),g,!h") as a LabelSelector;
 * "" selects everything. Throws on anything else, naming the bad part.
 */
export function parseLabelSelector(s: string): V1LabelSelector {
  const matchLabels: Record<string, string> = {};
  const matchExpressions: V1LabelSelectorRequirement[] = [];
  // Commas inside "(...)" separate values, not requirements.
  const parts: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  const bad = (part: string, why: string) => new Error(`label selector "${s}": "${part.trim()}": ${why}`);
  const checkKey = (part: string, k: string) => {
    if (!KEY.test(k)) throw bad(part, `"${k}" is not a valid label key`);
    return k;
  };
  const checkValue = (part: string, v: string) => {
    if (!VALUE.test(v) || v.length > 63) throw bad(part, `"${v}" is not a valid label value`);
    return v;
  };
  for (const raw of parts) {
    const part = raw.trim();
    if (!part) {
      if (parts.length === 1) break;
      throw bad(raw, "empty requirement");
    }
    let m: RegExpExecArray | null;
    if ((m = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part))) {
      const values = m[3]!.split(",").map((v) => checkValue(part, v.trim()));
      matchExpressions.push({
        key: checkKey(part, m[1]!),
        operator: m[2] === "in" ? "In" : "NotIn",
        values: [...new Set(values)].sort(),
      });
    } else if ((m = /^([^=!\s]+)\s*!=\s*(\S*)$/.exec(part))) {
      matchExpressions.push({ key: checkKey(part, m[1]!), operator: "NotIn", values: [checkValue(part, m[2]!)] });
    } else if ((m = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(part))) {
      const k = checkKey(part, m[1]!);
      if (k in matchLabels) throw bad(part, `"${k}" is given twice`);
      matchLabels[k] = checkValue(part, m[2]!);
    } else if ((m = /^!\s*(\S+)$/.exec(part))) {
      matchExpressions.push({ key: checkKey(part, m[1]!), operator: "DoesNotExist" });
    } else if (/^\S+$/.test(part)) {
      matchExpressions.push({ key: checkKey(part, part), operator: "Exists" });
    } else {
      throw bad(part, "expected key, !key, key=value, key!=value, key in (...) or key notin (...)");
    }
  }
  return {
    ...(Object.keys(matchLabels).length ? { matchLabels } : {}),
    ...(matchExpressions.length ? { matchExpressions } : {}),
  };
}

/** The target with its path set to `path` (the URL's origin is shared by both webhooks). */
function clientConfig(target: WebhookTarget, path: string, caPem: string): Record<string, unknown> {
  const caBundle = Buffer.from(caPem).toString("base64");
  if (target.url) {
    const u = new URL(target.url);
    u.pathname = path;
    return { url: u.toString(), caBundle };
  }
  return { service: { ...target.service!, path }, caBundle };
}

/**
 * The ValidatingWebhookConfiguration: Harmony's own resources only (never pods or anything else a
 * cluster needs to run), so failurePolicy Fail blocks nothing but Harmony writes while no operator
 * answers. Status writes go to the status subresource and are not sent.
 */
export function validatingConfiguration(o: {
  name: string;
  caPem: string;
  target: WebhookTarget;
  failurePolicy: FailurePolicy;
  timeoutSeconds?: number;
}): Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
} {
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingWebhookConfiguration",
    metadata: { name: o.name, labels: { "app.kubernetes.io/managed-by": MANAGED_BY } },
    webhooks: [
      {
        name: VALIDATING_WEBHOOK_NAME,
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        failurePolicy: o.failurePolicy,
        matchPolicy: "Equivalent",
        timeoutSeconds: o.timeoutSeconds ?? 10,
        clientConfig: clientConfig(o.target, VALIDATE_PATH, o.caPem),
        rules: [
          {
            operations: ["CREATE", "UPDATE"],
            apiGroups: [GROUP],
            apiVersions: [VERSION],
            resources: ["harmonygateways", "harmonypipelines", "harmonyendpoints"],
            scope: "Namespaced",
          },
          {
            operations: ["CREATE", "UPDATE"],
            apiGroups: [GROUP],
            apiVersions: [VERSION],
            resources: ["harmonynetworks"],
            scope: "Cluster",
          },
        ],
      },
    ],
  };
}
