/** The operator's --webhook-* flags, checked up front so a typo stops the start with a clear message. */
import { WEBHOOK_PATH, parseLabelSelector, type WebhookTarget } from "./config.js";
import type { SidecarWebhookOptions } from "./types.js";

export const WEBHOOK_HELP = `  --webhook-port <port>     Serve the admission webhooks (HTTPS: sidecar injection, validation of Harmony
                            resources) on this port; off when unset
  --webhook-config-name <n> MutatingWebhookConfiguration the operator creates and keeps in sync
                            (default harmony-sidecar-injector)
  --webhook-config-external <bool>
                            The MutatingWebhookConfiguration is installed by someone else (the Helm
                            chart): the operator only keeps its caBundle (default false: it applies it whole)
  --webhook-cert-secret <s> [namespace/]name of the Secret with the webhook CA and certificate
                            (default harmony-webhook-cert in $POD_NAMESPACE or default)
  --webhook-service <s>     [namespace/]name of the Service the API server calls, port 443
                            (default harmony-operator-webhook in $POD_NAMESPACE or default)
  --webhook-url <url>       Call the webhook at this https URL instead of the Service (out of cluster, tests);
                            validation is called at the same origin
  --webhook-failure-policy <Fail|Ignore>
                            What the API server does when it cannot reach the webhook (default Fail)
  --webhook-namespace-selector <sel>
                            Only pods in namespaces matching this label selector, e.g.
                            "harmony-injection=enabled" (default: every namespace)
  --validating-config-name <n>
                            ValidatingWebhookConfiguration for Harmony resources, served by the same
                            server (default harmony-validator; "" = do not validate at admission)
  --validating-config-external <bool>
                            The ValidatingWebhookConfiguration is installed by someone else (the Helm
                            chart): the operator only keeps its caBundle (default false: it applies it whole)
  --validating-failure-policy <Fail|Ignore>
                            Harmony writes while no operator answers: refused, or admitted unchecked
                            (default Fail; only Harmony resources are sent)
  --webhook-missing-gateway <deny|admit>
                            A labelled pod whose HarmonyGateway does not exist: refuse it, or admit it
                            without a sidecar and with a warning (default deny)
`;

export const WEBHOOK_FLAGS = {
  "webhook-port": { type: "string" },
  "webhook-config-name": { type: "string", default: "harmony-sidecar-injector" },
  "webhook-config-external": { type: "string", default: "false" },
  "webhook-cert-secret": { type: "string", default: "harmony-webhook-cert" },
  "webhook-service": { type: "string", default: "harmony-operator-webhook" },
  "webhook-url": { type: "string" },
  "webhook-failure-policy": { type: "string", default: "Fail" },
  "webhook-namespace-selector": { type: "string", default: "" },
  "webhook-missing-gateway": { type: "string", default: "deny" },
  "validating-config-name": { type: "string", default: "harmony-validator" },
  "validating-failure-policy": { type: "string", default: "Fail" },
  "validating-config-external": { type: "string", default: "false" },
} as const;

type Flags = { [K in keyof typeof WEBHOOK_FLAGS]?: string | undefined };

export type WebhookSettings = Omit<SidecarWebhookOptions, "kube" | "logger" | "defaultImage" | "registry">;

/** undefined when the webhook is off (no --webhook-port); throws with the offending flag named. */
export function webhookSettings(f: Flags, defaultNamespace: string): WebhookSettings | undefined {
  if (f["webhook-port"] === undefined) return undefined;
  const port = Number(f["webhook-port"]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`--webhook-port: "${f["webhook-port"]}" is not a port number`);
  }
  const ref = (flag: string, v: string) => {
    const parts = v.split("/");
    if (parts.length > 2 || parts.some((p) => !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(p))) {
      throw new Error(`--${flag}: "${v}" is not [namespace/]name`);
    }
    return parts.length === 2 ? { namespace: parts[0]!, name: parts[1]! } : { namespace: defaultNamespace, name: v };
  };
  const policy = f["webhook-failure-policy"] ?? "Fail";
  if (policy !== "Fail" && policy !== "Ignore") {
    throw new Error(`--webhook-failure-policy: "${policy}" is neither Fail nor Ignore`);
  }
  const validatingPolicy = f["validating-failure-policy"] ?? "Fail";
  if (validatingPolicy !== "Fail" && validatingPolicy !== "Ignore") {
    throw new Error(`--validating-failure-policy: "${validatingPolicy}" is neither Fail nor Ignore`);
  }
  const validatingName = f["validating-config-name"] ?? "harmony-validator";
  if (validatingName && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(validatingName)) {
    throw new Error(`--validating-config-name: "${validatingName}" is not a valid name`);
  }
  const bool = (flag: "validating-config-external" | "webhook-config-external") => {
    const v = f[flag] ?? "false";
    if (v !== "true" && v !== "false") throw new Error(`--${flag}: "${v}" is neither true nor false`);
    return v === "true";
  };
  const external = bool("validating-config-external");
  const configExternal = bool("webhook-config-external");
  const missing = f["webhook-missing-gateway"] ?? "deny";
  if (missing !== "deny" && missing !== "admit") {
    throw new Error(`--webhook-missing-gateway: "${missing}" is neither deny nor admit`);
  }
  let target: WebhookTarget;
  if (f["webhook-url"]) {
    let u: URL;
    try {
      u = new URL(f["webhook-url"]);
    } catch {
      throw new Error(`--webhook-url: "${f["webhook-url"]}" is not a URL`);
    }
    // The API server only calls webhooks over TLS.
    if (u.protocol !== "https:") throw new Error(`--webhook-url: "${f["webhook-url"]}" must be https`);
    if (u.pathname === "/") u.pathname = WEBHOOK_PATH;
    if (u.pathname !== WEBHOOK_PATH) throw new Error(`--webhook-url: the path must be ${WEBHOOK_PATH}`);
    target = { url: u.toString() };
  } else {
    target = { service: { ...ref("webhook-service", f["webhook-service"] ?? "harmony-operator-webhook"), port: 443 } };
  }
  let namespaceSelector;
  try {
    namespaceSelector = parseLabelSelector(f["webhook-namespace-selector"] ?? "");
  } catch (e) {
    throw new Error(`--webhook-namespace-selector: ${(e as Error).message}`);
  }
  return {
    port,
    configName: f["webhook-config-name"] ?? "harmony-sidecar-injector",
    ...(configExternal ? { configExternal: true } : {}),
    certSecret: ref("webhook-cert-secret", f["webhook-cert-secret"] ?? "harmony-webhook-cert"),
    failurePolicy: policy,
    namespaceSelector,
    target,
    onMissingGateway: missing,
    ...(validatingName
      ? {
          validation: {
            configName: validatingName,
            failurePolicy: validatingPolicy,
            ...(external ? { external: true } : {}),
          },
        }
      : {}),
  };
}
