/**
 * Leader election on a coordination.k8s.io Lease, with controller-runtime's timings (15 s lease,
 * 10 s renew deadline, 2 s retry). Acquire and renew are updates with a resourceVersion
 * precondition, so two candidates can never both win: the loser gets a 409 and tries again later.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "winston";

export interface LeaseOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The Lease as this candidate's last successful write left it (undefined once unsure). */
  private written: V1Lease | undefined;
  private readonly duration: number;
  private readonly deadline: number;
  private readonly retry: number;

  constructor(
    kc: KubeConfig,
    private readonly opts: LeaseOptions,
    private readonly logger: Logger,
    private readonly callbacks: {
      onStartedLeading: () => void | Promise<void>;
      onStoppedLeading: () => void | Promise<void>;
    },
  ) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.duration = opts.leaseDurationMs ?? 15_000;
    this.deadline = opts.renewDeadlineMs ?? 10_000;
    this.retry = opts.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    void this.tick();
  }

  /** Stops campaigning; a leader gives the lease up at once so a successor need not wait it out. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity === this.opts.identity) {
        lease.spec.holderIdentity = undefined;
        lease.spec.leaseDurationSeconds = 1;
        await this.api.replaceNamespacedLease({ namespace: this.opts.namespace, name: this.opts.name, body: lease });
      }
    } catch (e) {
      this.logger.warn("Lease not released", { error: String(e) });
    }
    await this.callbacks.onStoppedLeading();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (e) {
      this.logger.debug("Lease update failed", { error: String(e) });
    }
    const now = Date.now();
    if (ok) {
      this.lastRenew = now;
      if (!this.leading) {
        this.leading = true;
        this.logger.info("Became leader", {
          lease: `${this.opts.namespace}/${this.opts.name}`,
          identity: this.opts.identity,
        });
        await this.callbacks.onStartedLeading();
      }
    } else if (this.leading && now - this.lastRenew > this.deadline) {
      this.leading = false;
      this.logger.warn("Lost leadership", { identity: this.opts.identity });
      await this.callbacks.onStoppedLeading();
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.tick(), this.retry);
      this.timer.unref();
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ namespace: this.opts.namespace, name: this.opts.name });
    } catch (e) {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    // Lease times are MicroTime: the API server wants six fractional digits, which V1MicroTime writes.
    const now = new V1MicroTime();
    const mine = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.ceil(this.duration / 1000),
      renewTime: now,
    };
    // The leader renews on the Lease its own last write returned, as client-go's leader does: that
    // resourceVersion makes the update fail (409) if anyone else wrote since, and only then does it
    // read and decide as any candidate. The same compare-and-swap as read-then-update, in one
    // request every retry period instead of two.
    if (this.leading && this.written?.spec?.holderIdentity === this.opts.identity) {
      try {
        this.written = await this.api.replaceNamespacedLease({
          namespace: this.opts.namespace,
          name: this.opts.name,
          body: { ...this.written, spec: { ...this.written.spec, ...mine } },
        });
        return true;
      } catch {
        this.written = undefined;
      }
    }
    const lease = await this.read();
    if (!lease) {
      this.written = await this.api.createNamespacedLease({
        namespace: this.opts.namespace,
        body: {
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec: { ...mine, acquireTime: now, leaseTransitions: 0 },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? 0) * 1000 < now.getTime();
    if (holder && holder !== this.opts.identity && !expired) return false;
    const transition = holder !== this.opts.identity;
    lease.spec = {
      ...spec,
      ...mine,
      acquireTime: transition ? now : spec.acquireTime,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (transition ? 1 : 0),
    };
    // resourceVersion from the read makes this a compare-and-swap (409 if someone else wrote).
    this.written = await this.api.replaceNamespacedLease({
      namespace: this.opts.namespace,
      name: this.opts.name,
      body: lease,
    });
    return true;
  }
}
