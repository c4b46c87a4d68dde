/**
 * Keeps the webhook configurations in the API server in line with the operator's flags and CA:
 * server-side apply (forced) of what the operator owns, and nothing when the stored object already
 * says it, so a steady state makes no write.
 */
import { PatchStrategy } from "@kubernetes/client-node";
import type { KubeClients } from "../provider/kube.js";
import { validatingConfiguration, webhookConfiguration } from "./config.js";
import type { SidecarWebhookOptions } from "./types.js";

const FIELD_MANAGER = "harmony-operator-webhook";
const CA_ONLY = ["clientConfig.caBundle"];

type Desired = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } };

/** The mutating configuration, and the validating one when enabled. */
export async function applyConfigurations(
  o: Pick<
    SidecarWebhookOptions,
    "kube" | "configName" | "configExternal" | "target" | "failurePolicy" | "namespaceSelector" | "validation"
  >,
  caPem: string,
  force: boolean,
): Promise<void> {
  const mutating = webhookConfiguration({
    name: o.configName,
    caPem,
    target: o.target,
    failurePolicy: o.failurePolicy,
    namespaceSelector: o.namespaceSelector,
  });
  if (o.configExternal) await applyCaBundle(o.kube, mutating, force);
  else await applyOne(o.kube, mutating, force);
  const v = o.validation;
  if (!v) return;
  const full = validatingConfiguration({ name: v.configName, caPem, target: o.target, failurePolicy: v.failurePolicy });
  if (!v.external) return applyOne(o.kube, full, force);
  await applyCaBundle(o.kube, full, force);
}

/**
 * Someone else (the Helm chart) owns the configuration: apply only the caBundle field, so its owner
 * keeps everything else and removes the whole object when it is uninstalled. The operator never
 * creates it (an apply of one field would make a configuration with no rules or service): a missing
 * one is an error naming who should have installed it.
 */
async function applyCaBundle(kube: KubeClients, full: Desired, force: boolean): Promise<void> {
  const [wh] = full.webhooks as { name: string; clientConfig: { caBundle: string } }[];
  const partial = {
    apiVersion: full.apiVersion,
    kind: full.kind,
    metadata: { name: full.metadata.name },
    webhooks: [{ name: wh!.name, clientConfig: { caBundle: wh!.clientConfig.caBundle } }],
  };
  const current = await read(kube, partial);
  if (!current) {
    throw new Error(
      `${full.kind} ${full.metadata.name} not found: it is installed with the operator (the Helm chart); ` +
        `the operator only fills in its caBundle`,
    );
  }
  if (!force && same(current, partial, CA_ONLY)) return;
  await kube.objects.patch(partial, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
}

/** Server-side apply when a compared field of the first webhook differs (or `force`). */
async function applyOne(
  kube: KubeClients,
  desired: Desired,
  force: boolean,
  compare = ["clientConfig", "failurePolicy", "namespaceSelector", "objectSelector", "rules"],
): Promise<void> {
  if (!force) {
    const current = await read(kube, desired);
    if (current && same(current, desired, compare)) return;
  }
  await kube.objects.patch(desired, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
}

async function read(kube: KubeClients, desired: Desired): Promise<Desired | undefined> {
  return kube.objects.read(desired).catch((e: unknown) => {
    if ((e as { code?: number }).code === 404) return undefined;
    throw e;
  }) as Promise<Desired | undefined>;
}

/** Whether the first webhook of `current` already says what `desired`'s says, at each path. */
function same(current: Desired, desired: Desired, paths: string[]): boolean {
  const w = (current as { webhooks?: Record<string, unknown>[] }).webhooks?.[0];
  const want = (desired.webhooks as Record<string, unknown>[])[0]!;
  const at = (obj: Record<string, unknown> | undefined, path: string) =>
    path.split(".").reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], obj);
  return Boolean(w) && paths.every((k) => JSON.stringify(at(w, k)) === JSON.stringify(at(want, k)));
}
