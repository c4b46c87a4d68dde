/**
 * Keeps the webhook configurations in the API server in line with the operator's flags and CA:
 * server-side apply (forced) of what the operator owns, and nothing when the stored object already
 * says it, so a steady state makes no write.
 */
import { PatchStrategy } from "@kubernetes/client-node";
import type { KubeClients } from "../provider/kube.js";
import { validatingConfiguration, webhookConfiguration } from "./config.js";
import type { SidecarWebhookOptions } from "./server.js";

const FIELD_MANAGER = "harmony-operator-webhook";

type Desired = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } };

/** The mutating configuration, and the validating one when enabled. */
export async function applyConfigurations(
  o: Pick<
    SidecarWebhookOptions,
    "kube" | "configName" | "target" | "failurePolicy" | "namespaceSelector" | "validation"
  >,
  caPem: string,
  force: boolean,
): Promise<void> {
  await applyOne(
    o.kube,
    webhookConfiguration({
      name: o.configName,
      caPem,
      target: o.target,
      failurePolicy: o.failurePolicy,
      namespaceSelector: o.namespaceSelector,
    }),
    force,
  );
  const v = o.validation;
  if (!v) return;
  const full = validatingConfiguration({ name: v.configName, caPem, target: o.target, failurePolicy: v.failurePolicy });
  if (!v.external) return applyOne(o.kube, full, force);
  // Someone else (the Helm chart) owns the configuration: apply only the caBundle field, so its
  // owner keeps everything else and removes the whole object when it is uninstalled.
  const [wh] = full.webhooks as { name: string; clientConfig: { caBundle: string } }[];
  const partial = {
    apiVersion: full.apiVersion,
    kind: full.kind,
    metadata: { name: v.configName },
    webhooks: [{ name: wh!.name, clientConfig: { caBundle: wh!.clientConfig.caBundle } }],
  };
  await applyOne(o.kube, partial, force, ["clientConfig.caBundle"]);
}

/** Server-side apply when a compared field of the first webhook differs (or `force`). */
async function applyOne(
  kube: KubeClients,
  desired: Desired,
  force: boolean,
  compare = ["clientConfig", "failurePolicy", "namespaceSelector", "objectSelector", "rules"],
): Promise<void> {
  if (!force) {
    const current = await kube.objects.read(desired).catch((e: unknown) => {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    });
    const w = (current as { webhooks?: Record<string, unknown>[] } | undefined)?.webhooks?.[0];
    const want = (desired.webhooks as Record<string, unknown>[])[0]!;
    const at = (obj: Record<string, unknown> | undefined, path: string) =>
      path.split(".").reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], obj);
    if (w && compare.every((k) => JSON.stringify(at(w, k)) === JSON.stringify(at(want, k)))) return;
  }
  await kube.objects.patch(desired, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
}
