/** The webhook server's options and the AdmissionReview shapes it reads and answers. */
import type { V1LabelSelector, V1Pod } from "@kubernetes/client-node";
import type client from "prom-client";
import type { Logger } from "winston";
import type { KubeClients } from "../provider/kube.js";
import type { FailurePolicy, WebhookTarget } from "./config.js";

export type MissingGateway = "deny" | "admit";

export interface SidecarWebhookOptions {
  kube: KubeClients;
  logger: Logger;
  port: number;
  configName: string;
  /**
   * The MutatingWebhookConfiguration is installed by someone else (the Helm chart, so that
   * uninstalling removes it): only its caBundle is ours, and failurePolicy and namespaceSelector
   * are the installer's.
   */
  configExternal?: boolean;
  certSecret: { namespace: string; name: string };
  failurePolicy: FailurePolicy;
  namespaceSelector: V1LabelSelector;
  target: WebhookTarget;
  /** A labelled pod whose gateway does not exist: refuse it (default) or admit it without a sidecar. */
  onMissingGateway: MissingGateway;
  /** Validate Harmony resources at admission (VALIDATE_PATH) through this ValidatingWebhookConfiguration. */
  validation?: {
    configName: string;
    failurePolicy: FailurePolicy;
    /** The configuration is installed by someone else (the chart): only its caBundle is ours. */
    external?: boolean;
  };
  defaultImage?: string;
  /**
   * How often the Secret and the webhook configuration are read back (default 10 min): picks up a
   * certificate another replica renewed and repairs a deleted or edited configuration.
   */
  refreshMs?: number;
  registry?: client.Registry;
}

export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  object?: V1Pod;
  dryRun?: boolean;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: "JSONPatch";
  patch?: string;
  warnings?: string[];
  status?: { code: number; reason?: string; message: string };
}
