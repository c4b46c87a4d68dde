/**
 * Association reuse for the DIMSE SCU (issue 18). Per `dicom` backend (one peer, one calling AE,
 * one TLS identity: the SharedResources key says which) a few open associations, each carrying one
 * DIMSE exchange at a time (we negotiate no asynchronous operations, PS3.7 D.3.3.3).
 *
 * dcmjs-dimse's Client opens an association, sends the requests it was given and releases when
 * they are done (its Network emits `done`, the Client answers with an A-RELEASE-RQ). Here the
 * Client still opens the association (its first requests go as usual), but that `done` listener is
 * replaced: the association stays open, and later requests go on it through the Network's own
 * `sendRequests`, whose `done` says when they are finished. Nothing of the protocol is written here.
 *
 * Presentation contexts: a request may go on an association only if that association proposed
 * exactly the contexts a fresh one would propose for it (same abstract syntax, same transfer
 * syntaxes); what the peer made of them is then what it would make of them again, so reuse changes
 * no answer, and the library never sends on a context that was not accepted. An association is
 * opened with the request's contexts plus the common ones (Verification, the FIND models), so
 * queries and echoes share it.
 *
 * Failures: a peer's A-ABORT, a dropped socket or a timeout takes the association out of the pool
 * and fails the request on it (502/504, as before); the next request opens a new one. A request
 * is re-queued only when none of it can have reached the peer: the association it was to go on
 * turned out closed before we wrote, or was rejected (a peer at its association limit: that limit
 * is then learned, and requests wait for a free association instead of failing).
 */

import { HttpError, problemType } from "../pipeline/errors.js";
import {
  Pooled,
  endpointOf,
  fits,
  isReadOnly,
  proposalFor,
  type AnyRequest,
  type ExchangeOptions,
  type Job,
  type Owner,
  type PoolOptions,
  type PoolPeer,
  type Rejection,
  type State,
} from "./dimse-association.js";

export type { AnyRequest, ExchangeOptions, PoolOptions, PoolPeer, StoreHandler } from "./dimse-association.js";

/** A-ASSOCIATE-RJ result "rejected-transient" (PS3.8 Table 9-21). */
const TRANSIENT = 2;
/** How long a closing pool waits for associations still busy (see AssociationPool.close). */
const CLOSE_GRACE_MS = 5000;

export class AssociationPool implements Owner {
  private readonly all = new Set<Pooled>();
  private readonly queue: Job[] = [];
  /** The peer's own limit, once it rejected an association while others were open. */
  private learnedLimit: number | undefined;
  draining = false;
  /** Past the closing grace: nothing more is sent. */
  private shut = false;
  private drained: (() => void) | undefined;
  /** Associations opened over the pool's life (for logs and tests). */
  opened = 0;

  constructor(readonly options: PoolOptions) {}

  /** Runs `requests` on a pooled association; resolves when the library is done with all of them. */
  run(peer: PoolPeer, requests: AnyRequest[], opts: ExchangeOptions = {}): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const proposal = new Set([...proposalFor(requests), ...(opts.extra ?? [])]);
      const job: Job = { ...opts, peer, requests, proposal, resolve, reject };
      for (const r of requests) r.on("response", () => (job.responded = true));
      this.wait(job, "end");
      this.pump();
      // Still waiting, behind more than the queue holds: refused now rather than later.
      if (this.queue.length > this.options.maxQueued && this.queue.at(-1) === job) {
        this.take(this.queue.length - 1);
        reject(
          new HttpError(503, `too many requests waiting for an association to DICOM peer ${peer.calledAet}`, {
            type: problemType("dimse-pool-full"),
            headers: { "retry-after": "1" },
          }),
        );
      }
    });
  }

  /** Queues `job` (at the head when it was already waiting), with its deadline. */
  private wait(job: Job, where: "head" | "end"): void {
    job.timer = setTimeout(() => {
      const at = this.queue.indexOf(job);
      if (at < 0) return;
      this.queue.splice(at, 1);
      job.reject(
        new HttpError(503, `no association to DICOM peer ${job.peer.calledAet} came free in time`, {
          type: problemType("dimse-pool-timeout"),
          headers: { "retry-after": "1" },
        }),
      );
    }, this.options.queueTimeoutMs);
    job.timer.unref();
    if (where === "head") this.queue.unshift(job);
    else this.queue.push(job);
  }

  private get limit(): number {
    return Math.min(this.options.maxAssociations, this.learnedLimit ?? Infinity);
  }

  /** Hands waiting jobs to idle associations that fit them, opens new ones while under the limit. */
  pump(): void {
    if (this.shut) return;
    for (let i = 0; i < this.queue.length;) {
      const job = this.queue[i]!;
      const endpoint = endpointOf(job.peer);
      const fit = [...this.all].find(
        (a) => a.state === "idle" && a.endpoint === endpoint && fits(job.proposal, a.proposed),
      );
      if (fit) {
        // A connection found closed before we wrote to it is dropped; the job stays in line.
        if (fit.writable()) fit.dispatch(this.take(i));
        else fit.destroy();
        continue;
      }
      if (this.all.size < this.limit && !this.paused) {
        const a = new Pooled(endpoint, this);
        this.all.add(a);
        this.opened++;
        a.open(this.take(i));
        continue;
      }
      // Full: an idle association that does not fit makes room for one that does (one at a time:
      // when it has closed, this runs again).
      if (![...this.all].some((a) => a.state === "closing")) [...this.all].find((a) => a.state === "idle")?.release();
      i++;
    }
  }

  private take(i: number): Job {
    const [job] = this.queue.splice(i, 1);
    clearTimeout(job!.timer);
    return job!;
  }

  /**
   * A-ASSOCIATE-RJ. With other associations open (or opening), the peer is at its limit: the job
   * waits for one of those. With none, a transient rejection (a peer that counts associations
   * still being negotiated, or busy with other callers) is tried again after a pause that doubles
   * up to a second, within the job's queue deadline; a permanent one fails the job.
   */
  rejected(a: Pooled, rj: Rejection): void {
    const job = a.takeJob();
    // Opening ones count: their A-ASSOCIATE-AC may simply not have been read yet.
    const open = [...this.all].filter((x) => x !== a && x.state !== "closing").length;
    a.destroy();
    if (!job) return;
    if (open > 0 || rj.result === TRANSIENT) {
      this.learnedLimit = Math.max(1, open);
      this.wait(job, "head");
      if (open === 0) this.pause();
      return;
    }
    job.reject(
      new HttpError(502, `DICOM peer ${job.peer.calledAet} rejected the association (reason ${rj.reason ?? "?"})`, {
        type: problemType("dimse-association-rejected"),
      }),
    );
  }

  /** Consecutive transient rejections with nothing open, for the pause before the next try. */
  private refusals = 0;
  private paused: NodeJS.Timeout | undefined;

  private pause(): void {
    if (this.paused) return;
    const ms = Math.min(1000, 50 * 2 ** this.refusals++);
    this.paused = setTimeout(() => {
      this.paused = undefined;
      this.pump();
    }, ms);
    this.paused.unref();
  }

  accepted(): void {
    this.refusals = 0;
  }

  /**
   * The association under `job` failed. A read-only job that went on a reused association and had
   * no answer yet (nor timed out waiting for one) is sent once more: the peer may have dropped that
   * association while it sat idle, and repeating a C-FIND or C-ECHO changes nothing. Anything
   * else fails.
   */
  failed(job: Job, e: Error): void {
    const timedOut = e instanceof HttpError && e.status === 504;
    const retry = job.reused && !job.responded && !job.retried && !timedOut && !this.shut;
    if (retry && job.requests.every(isReadOnly)) {
      job.retried = true;
      job.reused = false;
      this.wait(job, "head");
      queueMicrotask(() => this.pump());
      return;
    }
    job.reject(e);
  }

  forget(a: Pooled): void {
    this.all.delete(a);
    if (this.all.size === 0) this.learnedLimit = undefined; // a fresh start: the peer's limit may have changed
    if (this.draining && this.all.size === 0 && this.queue.length === 0) this.drained?.();
    this.pump();
  }

  /** Open associations by state (tests, logs). */
  counts(): Record<State, number> & { queued: number } {
    const out = { opening: 0, busy: 0, idle: 0, closing: 0, queued: this.queue.length };
    for (const a of this.all) out[a.state]++;
    return out;
  }

  /**
   * No generation uses this pool any more (a reload changed the peer, or shutdown): requests still
   * on it finish, then every association is released. The gateway calls this once the requests of
   * the retired generation are done (or cut, at shutdown), so an association still busy after a
   * short grace is waiting on a peer nobody is listening for any more: it is closed.
   */
  close(): Promise<void> {
    this.draining = true;
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(grace);
        resolve();
      };
      const grace = setTimeout(() => {
        this.shut = true;
        for (const a of this.all) a.fail(new HttpError(503, "the gateway is closing this DICOM association pool"));
        for (const job of this.queue.splice(0)) {
          clearTimeout(job.timer);
          job.reject(new HttpError(503, "the gateway is closing this DICOM association pool"));
        }
        finish();
      }, CLOSE_GRACE_MS);
      grace.unref();
      this.drained = finish;
      for (const a of this.all) a.release();
      if (this.all.size === 0 && this.queue.length === 0) finish();
    });
  }
}
