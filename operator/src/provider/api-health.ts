/**
 * Whether the operator can reach the API server and is still allowed to do its job, for /readyz.
 * Informers that synced once keep serving a stale cache while the API is gone or the operator's
 * RBAC was revoked; only a fresh call tells. Every interval a SelfSubjectAccessReview asks "may I
 * list HarmonyGateways?": cheap (no storage read), it needs an authenticated, reachable API, and
 * its answer is the authorisation that matters.
 */
import { AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "winston";
import { GROUP } from "../api/v1alpha1.js";

export interface ApiHealthOptions {
  intervalMs: number;
  /** Where to ask for list access (a scoped operator has it only in its namespaces); undefined = cluster-wide. */
  namespace?: string;
}

export class ApiHealth {
  private readonly authz: AuthorizationV1Api;
  private timer: NodeJS.Timeout | undefined;
  /** Why the operator is not ready; undefined when the last check passed. */
  problem: string | undefined = "API server not checked yet";

  constructor(
    kc: KubeConfig,
    private readonly opts: ApiHealthOptions,
    private readonly logger: Logger,
  ) {
    this.authz = kc.makeApiClient(AuthorizationV1Api);
  }

  get ok(): boolean {
    return this.problem === undefined;
  }

  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async check(): Promise<void> {
    let problem: string | undefined;
    try {
      // A hung connection must count as a failure, not leave the last verdict standing.
      const review = await withTimeout(
        this.authz.createSelfSubjectAccessReview({
          body: {
            spec: {
              resourceAttributes: {
                group: GROUP,
                resource: "harmonygateways",
                verb: "list",
                ...(this.opts.namespace ? { namespace: this.opts.namespace } : {}),
              },
            },
          },
        }),
        this.opts.intervalMs,
      );
      if (!review.status?.allowed) {
        const where = this.opts.namespace ? ` in namespace ${this.opts.namespace}` : " cluster-wide";
        problem = `not authorised to list harmonygateways.${GROUP}${where}`;
      }
    } catch (e) {
      const code = (e as { code?: number }).code;
      problem = code ? `API server answered ${code}` : `API server unreachable: ${(e as Error).message}`;
    }
    if (problem !== this.problem) {
      if (problem) this.logger.warn("API check failed; not ready", { problem });
      else this.logger.info("API check passed; ready");
    }
    this.problem = problem;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
