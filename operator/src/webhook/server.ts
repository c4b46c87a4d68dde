/**
 * Sidecar mode: the mutating admission webhook that injects the data plane into pods labelled
 * `harmony.runbeam.io/gateway: <name>`, plus the certificate and MutatingWebhookConfiguration
 * upkeep it needs.
 *
 * Every replica serves the webhook, leader or not: the API server calls whichever pod its Service
 * picks, and a pod admission must not wait for a leader election. So nothing here depends on the
 * controller's informers (they run on the leader only); the gateway is read with a GET per
 * admission, which also means a gateway created a moment ago is seen.
 *
 * Order at start: certificate (from the Secret, created if absent) → HTTPS listening → webhook
 * configuration applied, so the API server is never told to call a server that is not there yet.
 */
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { V1Secret } from "@kubernetes/client-node";
import client from "prom-client";
import { GROUP, VERSION, type HarmonyGateway } from "../api/v1alpha1.js";
import { GATEWAY_LABEL, MANAGED_BY, configMapName } from "../translator/workload.js";
import {
  SECRET_KEYS,
  assessBundle,
  checkExternal,
  createBundle,
  issueServing,
  type BundleVerdict,
  type CertBundle,
} from "./certs.js";
import { VALIDATE_PATH, WEBHOOK_PATH, type WebhookTarget } from "./config.js";
import { applyConfigurations } from "./apply.js";
import { HttpError, readJson, sendJson } from "./http.js";
import { hasSidecar, injectionPatch, networksIn } from "./inject.js";
import { validationResponse, type ValidationRequest } from "./validate.js";
import type { AdmissionRequest, AdmissionResponse, SidecarWebhookOptions } from "./types.js";

export type { AdmissionResponse, MissingGateway, SidecarWebhookOptions } from "./types.js";

type Outcome = "injected" | "unchanged" | "denied";

/** Names the serving certificate must cover for `target`. */
export function certHosts(target: WebhookTarget): string[] {
  const hosts: string[] = [];
  if (target.url) hosts.push(new URL(target.url).hostname.replace(/^\[|\]$/g, ""));
  if (target.service) {
    const { name, namespace } = target.service;
    hosts.push(`${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`, `${name}.${namespace}`, name);
  }
  return [...new Set(hosts)];
}

export class SidecarWebhook {
  private server: Server | undefined;
  private bundle: CertBundle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly hosts: string[];
  private readonly admissions: client.Counter<"result">;
  private readonly validations: client.Counter<"kind" | "result">;
  ready = false;

  constructor(private readonly o: SidecarWebhookOptions) {
    this.hosts = certHosts(o.target);
    this.admissions = new client.Counter({
      name: "harmony_operator_webhook_admissions_total",
      help: "Pod admissions handled by the sidecar injector, by result (injected, unchanged, denied, error).",
      labelNames: ["result"] as const,
      registers: o.registry ? [o.registry] : [],
    });
    this.validations = new client.Counter({
      name: "harmony_operator_webhook_validations_total",
      help: "Harmony resources checked at admission, by kind and result (allowed, denied, error).",
      labelNames: ["kind", "result"] as const,
      registers: o.registry ? [o.registry] : [],
    });
  }

  /** The port the server listens on (useful with port 0). */
  get port(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === "object" ? a.port : undefined;
  }

  async start(): Promise<void> {
    this.bundle = await this.ensureCertificate();
    this.server = createServer({ cert: this.bundle.certPem, key: this.bundle.keyPem, minVersion: "TLSv1.2" }, (q, s) =>
      this.serve(q, s),
    );
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.o.port, () => {
        this.server!.off("error", reject);
        resolve();
      });
    });
    await this.applyConfiguration(true);
    this.ready = true;
    this.o.logger.info("Sidecar webhook serving", {
      port: this.port,
      path: WEBHOOK_PATH,
      configuration: this.o.configName,
      failure_policy: this.o.failurePolicy,
      validating_configuration: this.o.validation?.configName ?? "(off)",
      target: this.o.target.url ?? `service ${this.o.target.service?.namespace}/${this.o.target.service?.name}`,
    });
    this.schedule();
  }

  async stop(): Promise<void> {
    this.ready = false;
    clearTimeout(this.timer);
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }

  private schedule(): void {
    this.timer = setTimeout(
      () => void this.refresh().finally(() => this.server && this.schedule()),
      this.o.refreshMs ?? 600_000,
    );
    this.timer.unref();
  }

  /** Picks up a certificate another replica renewed, renews one that is due, repairs configuration drift. */
  private async refresh(): Promise<void> {
    try {
      const b = await this.ensureCertificate();
      if (b.certPem !== this.bundle?.certPem || b.keyPem !== this.bundle?.keyPem) {
        this.server?.setSecureContext({ cert: b.certPem, key: b.keyPem, minVersion: "TLSv1.2" });
        this.o.logger.info("Webhook serving certificate reloaded", { secret: this.secretRef() });
      }
      const caChanged = b.caPem !== this.bundle?.caPem;
      this.bundle = b;
      await this.applyConfiguration(caChanged);
    } catch (e) {
      this.o.logger.warn("Webhook certificate or configuration check failed; retrying later", {
        error: (e as Error).message,
      });
    }
  }

  private secretRef(): string {
    return `${this.o.certSecret.namespace}/${this.o.certSecret.name}`;
  }

  /**
   * The bundle from the Secret when it is good; otherwise a renewed or new one, written back with a
   * precondition (create, or replace at the resourceVersion read) so that replicas starting together
   * settle on one bundle: the loser of the race reads the winner's.
   */
  private async ensureCertificate(): Promise<CertBundle> {
    const { namespace, name } = this.o.certSecret;
    for (let attempt = 1; ; attempt++) {
      const secret = await this.o.kube.core.readNamespacedSecret({ name, namespace }).catch((e: unknown) => {
        if ((e as { code?: number }).code === 404) return undefined;
        throw e;
      });
      const stored = fromSecret(secret);
      const verdict: BundleVerdict = assessBundle(stored, this.hosts);
      if (verdict === "ok") return stored as CertBundle;
      if (verdict === "external") {
        try {
          checkExternal(stored);
        } catch (e) {
          throw new Error(`Secret ${this.secretRef()} (issued elsewhere, no ca.key): ${(e as Error).message}`);
        }
        return stored as CertBundle;
      }
      const next: CertBundle =
        verdict === "replace"
          ? createBundle(this.hosts)
          : {
              caPem: stored.caPem!,
              caKeyPem: stored.caKeyPem!,
              ...issueServing({ caPem: stored.caPem!, caKeyPem: stored.caKeyPem! }, this.hosts),
            };
      const body: V1Secret = {
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name,
          namespace,
          labels: { "app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/component": "webhook" },
          ...(secret?.metadata?.resourceVersion ? { resourceVersion: secret.metadata.resourceVersion } : {}),
        },
        type: "kubernetes.io/tls",
        data: toSecretData(next),
      };
      try {
        if (secret) await this.o.kube.core.replaceNamespacedSecret({ name, namespace, body });
        else await this.o.kube.core.createNamespacedSecret({ namespace, body });
        this.o.logger.info(
          verdict === "replace" ? "Webhook CA and certificate created" : "Webhook serving certificate renewed",
          { secret: this.secretRef(), hosts: this.hosts },
        );
        return next;
      } catch (e) {
        // 409: another replica wrote first (create raced, or the resourceVersion moved): use theirs.
        if ((e as { code?: number }).code !== 409 || attempt >= 5) throw e;
      }
    }
  }

  private async applyConfiguration(force: boolean): Promise<void> {
    await applyConfigurations(this.o, this.bundle!.caPem, force);
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "").split("?")[0];
    if (path === "/healthz" || path === "/readyz") {
      res.end("ok");
      return;
    }
    const validate = path === VALIDATE_PATH && this.o.validation !== undefined;
    if (path !== WEBHOOK_PATH && !validate) return void sendJson(res, 404, { message: `no handler for ${path}` });
    if (req.method !== "POST") return void sendJson(res, 405, { message: "POST an AdmissionReview" });
    void readJson(req)
      .then((body) => (validate ? this.validate(body) : this.review(body)))
      .then(
        (review) => sendJson(res, 200, review),
        (e: unknown) => {
          // A non-200 answer lets the API server apply failurePolicy, which is what an operator
          // chose for "the webhook could not decide".
          this.admissions.inc({ result: "error" });
          const status = e instanceof HttpError ? e.status : 500;
          this.o.logger.warn("Admission review failed", { error: (e as Error).message, status });
          sendJson(res, status, { message: (e as Error).message });
        },
      );
  }

  /** Harmony resources: the data plane's checker, answered in spec paths (webhook/validate.ts). */
  private validate(body: unknown): Record<string, unknown> {
    const review = body as { apiVersion?: string; kind?: string; request?: ValidationRequest };
    if (review?.kind !== "AdmissionReview" || !review.request?.uid) {
      throw new HttpError(400, "expected an AdmissionReview with a request");
    }
    const kind = review.request.kind?.kind ?? "unknown";
    let response: AdmissionResponse;
    try {
      response = validationResponse(review.request);
    } catch (e) {
      this.validations.inc({ kind, result: "error" });
      throw e;
    }
    this.validations.inc({ kind, result: response.allowed ? "allowed" : "denied" });
    if (!response.allowed) {
      this.o.logger.info("Harmony resource refused at admission", {
        kind,
        name: `${review.request.namespace ?? ""}/${review.request.name ?? ""}`,
        reason: response.status?.message,
      });
    }
    return { apiVersion: review.apiVersion ?? "admission.k8s.io/v1", kind: "AdmissionReview", response };
  }

  private async review(body: unknown): Promise<Record<string, unknown>> {
    const review = body as { apiVersion?: string; kind?: string; request?: AdmissionRequest };
    if (review?.kind !== "AdmissionReview" || !review.request?.uid) {
      throw new HttpError(400, "expected an AdmissionReview with a request");
    }
    const response = await this.admit(review.request);
    this.admissions.inc({ result: outcome(response) });
    return { apiVersion: review.apiVersion ?? "admission.k8s.io/v1", kind: "AdmissionReview", response };
  }

  private async admit(r: AdmissionRequest): Promise<AdmissionResponse> {
    const allow: AdmissionResponse = { uid: r.uid, allowed: true };
    const pod = r.object;
    const gwName = pod?.metadata?.labels?.[GATEWAY_LABEL];
    if (r.kind?.kind !== "Pod" || r.operation !== "CREATE" || !pod || !gwName) return allow;
    if (pod.metadata?.labels?.["app.kubernetes.io/managed-by"] === MANAGED_BY || hasSidecar(pod)) return allow;
    const namespace = r.namespace ?? pod.metadata?.namespace;
    if (!namespace) throw new HttpError(400, "the request names no namespace");
    const podName = pod.metadata?.name ?? `${pod.metadata?.generateName ?? ""}*`;

    const gw = (await this.o.kube.custom
      .getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: "harmonygateways", name: gwName })
      .catch((e: unknown) => {
        if ((e as { code?: number }).code === 404) return undefined;
        throw e;
      })) as HarmonyGateway | undefined;
    if (!gw) {
      const message =
        `HarmonyGateway ${namespace}/${gwName} (named by this pod's ${GATEWAY_LABEL} label) does not exist, ` +
        `so no Harmony sidecar can be injected; create the gateway with spec.mode: Sidecar, or remove the label`;
      this.o.logger.info("Pod without its gateway", { pod: `${namespace}/${podName}`, gateway: gwName });
      if (this.o.onMissingGateway === "admit") return { ...allow, warnings: [message] };
      return { uid: r.uid, allowed: false, status: { code: 403, reason: "Forbidden", message } };
    }
    if ((gw.spec.mode ?? "Deployment") !== "Sidecar") {
      return {
        ...allow,
        warnings: [
          `HarmonyGateway ${namespace}/${gwName} is in ${gw.spec.mode ?? "Deployment"} mode; no sidecar injected (set spec.mode: Sidecar)`,
        ],
      };
    }
    // A member gateway's network files (certificate, key, trust bundle, directory) are in its
    // network Secret, written before any config that names them: the sidecar mounts the networks
    // its config names (public data: admission never reads that Secret, which holds the key). A
    // gateway that joins a network later needs its pods re-created, as for any change to the
    // injected spec.
    const config = await this.o.kube.core
      .readNamespacedConfigMap({ namespace, name: configMapName(gw) })
      .catch((e: unknown) => {
        if ((e as { code?: number }).code === 404) return undefined;
        throw e;
      });
    const { patch, warnings } = injectionPatch(pod, gw, this.o.defaultImage, networksIn(config));
    if (!patch.length) return allow;
    this.o.logger.info("Sidecar injected", {
      pod: `${namespace}/${podName}`,
      gateway: gwName,
      dry_run: Boolean(r.dryRun),
    });
    return {
      ...allow,
      patchType: "JSONPatch",
      patch: Buffer.from(JSON.stringify(patch)).toString("base64"),
      ...(warnings.length ? { warnings } : {}),
    };
  }
}

function outcome(r: AdmissionResponse): Outcome {
  return !r.allowed ? "denied" : r.patch ? "injected" : "unchanged";
}

function fromSecret(s: V1Secret | undefined): Partial<CertBundle> {
  const d = s?.data ?? {};
  const get = (k: string) => (d[k] ? Buffer.from(d[k], "base64").toString("utf8") : undefined);
  return {
    certPem: get(SECRET_KEYS.cert),
    keyPem: get(SECRET_KEYS.key),
    caPem: get(SECRET_KEYS.ca),
    caKeyPem: get(SECRET_KEYS.caKey),
  };
}

function toSecretData(b: CertBundle): Record<string, string> {
  const enc = (s: string) => Buffer.from(s).toString("base64");
  return {
    [SECRET_KEYS.cert]: enc(b.certPem),
    [SECRET_KEYS.key]: enc(b.keyPem),
    [SECRET_KEYS.ca]: enc(b.caPem),
    [SECRET_KEYS.caKey]: enc(b.caKeyPem),
  };
}
