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
import type { Socket } from "node:net";
import { HttpError, problemType } from "../pipeline/errors.js";
import { Client, association, constants, requests as dimseRequests } from "./dimse.js";

type AnyClient = InstanceType<typeof Client>;
export type AnyRequest = Parameters<AnyClient["addRequest"]>[0];
type AnyAssociation = InstanceType<typeof association.Association>;
type AnyContext = InstanceType<typeof association.PresentationContext>;

/** The peer and how to reach it (dimse-client.ts's Peer, without the pool). */
export interface PoolPeer {
  host: string;
  port: number;
  calledAet: string;
  callingAet: string;
  connectTimeoutMs: number;
  associationTimeoutMs: number;
}

export interface PoolOptions {
  /** Open associations at most (opening and releasing ones count: the peer still holds them). */
  maxAssociations: number;
  /** An association unused this long is released (A-RELEASE). */
  idleTimeoutMs: number;
  /** Requests waiting for an association at most; past it, 503 at once. */
  maxQueued: number;
  /** How long a request waits for an association before a 503. */
  queueTimeoutMs: number;
}

/** What the Client's connection (dcmjs-dimse's Network) offers that is used here. */
interface Network {
  socket: Socket;
  association?: AnyAssociation;
  lastPduTime?: number;
  connectTimeout: number;
  sendRequests(requests: AnyRequest[]): void;
  sendAssociationReleaseRequest(): void;
  sendAssociationReleaseResponse(): void;
  on(event: string, fn: (arg?: unknown) => void): void;
  removeAllListeners(event: string): void;
}

const IMPLICIT_LE = constants.TransferSyntax.ImplicitVRLittleEndian;
const EXPLICIT_LE = constants.TransferSyntax.ExplicitVRLittleEndian;
const MAX_CONTEXTS = 128;
/** How long a closing pool waits for associations still busy (see AssociationPool.close). */
const CLOSE_GRACE_MS = 5000;
/** Proposed on every pooled association (room permitting), so echoes and queries can share any. */
const COMMON_SOP_CLASSES = [
  constants.SopClass.Verification,
  "1.2.840.10008.5.1.4.1.2.1.1", // Patient Root Q/R FIND
  constants.SopClass.StudyRootQueryRetrieveInformationModelFind,
  constants.SopClass.ModalityWorklistInformationModelFind,
];
const COMMON = COMMON_SOP_CLASSES.map((uid) => `${uid}|${IMPLICIT_LE},${EXPLICIT_LE}`);

/** A proposed context as compared here: abstract syntax and the transfer syntaxes, in order. */
function signaturesOf(a: AnyAssociation): Set<string> {
  const out = new Set<string>();
  for (const { id } of a.getPresentationContexts() as { id: number }[]) {
    const c = a.getPresentationContext(id);
    out.add(`${c.getAbstractSyntaxUid()}|${c.getTransferSyntaxUids().join(",")}`);
  }
  return out;
}

/** What a fresh association for `requests` would propose: the Client's own computation, run aside. */
function proposalFor(requests: AnyRequest[]): Set<string> {
  const a = new association.Association("", "");
  for (const r of requests) a.addPresentationContextFromRequest(r, [IMPLICIT_LE, EXPLICIT_LE]);
  return signaturesOf(a);
}

function contextOf(signature: string): AnyContext {
  const [sopClass, syntaxes] = signature.split("|") as [string, string];
  const [first, ...rest] = syntaxes.split(",");
  const pc = new association.PresentationContext(0, sopClass, first);
  for (const t of rest) pc.addTransferSyntaxUid(t);
  return pc;
}

const endpointOf = (p: PoolPeer) =>
  JSON.stringify([p.host, p.port, p.calledAet, p.callingAet, p.connectTimeoutMs, p.associationTimeoutMs]);

interface Job {
  peer: PoolPeer;
  requests: AnyRequest[];
  proposal: Set<string>;
  resolve(): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
  /** Sent on an association that served earlier requests (the peer may have dropped it meanwhile). */
  reused?: boolean;
  /** Any response came back (a retry would then repeat what the peer did). */
  responded?: boolean;
  retried?: boolean;
}

/** C-ECHO and C-FIND change nothing at the peer: sending one again is safe. */
const isReadOnly = (r: AnyRequest) =>
  r instanceof dimseRequests.CFindRequest || r instanceof dimseRequests.CEchoRequest;

type State = "opening" | "busy" | "idle" | "closing";

/** One association of the pool. */
class Pooled {
  state: State = "opening";
  job: Job | undefined;
  proposed = new Set<string>();
  network: Network | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly endpoint: string,
    private readonly pool: AssociationPool,
  ) {}

  /** Opens the association with `job`'s requests as its first. */
  open(job: Job): void {
    const { peer } = job;
    this.job = job;
    const client = new Client();
    for (const r of job.requests) client.addRequest(r);
    const extra = COMMON.filter((s) => !job.proposal.has(s));
    const room = job.proposal.size + extra.length <= MAX_CONTEXTS;
    if (room) for (const s of extra) client.addAdditionalPresentationContext(contextOf(s), true);
    // What the Client proposes (the A-ASSOCIATE-AC rewrites each context's syntaxes to the
    // accepted one, so this is recorded now rather than read back later).
    this.proposed = new Set([...job.proposal, ...(room ? extra : [])]);
    client.on("associationAccepted", () => (this.state = "busy"));
    client.on("associationRejected", (r: { reason?: number }) => this.pool.rejected(this, r.reason));
    client.on("networkError", (e: Error) => this.fail(transportError(peer, e)));
    client.on("closed", () => this.closed());
    client.send(peer.host, peer.port, peer.callingAet, peer.calledAet, {
      connectTimeout: peer.connectTimeoutMs,
      associationTimeout: peer.associationTimeoutMs,
      pduTimeout: peer.associationTimeoutMs,
    });
    const network = (client as unknown as { network: Network }).network;
    this.network = network;
    // The Client would release once these requests are done; the pool decides that instead.
    network.removeAllListeners("done");
    network.on("done", () => this.done());
    // A-ABORT from the peer (PS3.8 AA-3): nothing more is owed on this connection.
    network.on("abort", () =>
      this.fail(
        new HttpError(502, `DICOM peer ${peer.calledAet} aborted the association`, {
          type: problemType("upstream-error"),
        }),
      ),
    );
    network.on("associationReleaseRequested", () => this.peerReleases());
  }

  /** Whether the connection can still take a request (the peer may have closed it while idle). */
  writable(): boolean {
    const socket = this.network!.socket;
    return !socket.destroyed && socket.writable;
  }

  /** Sends `job` on this idle association. */
  dispatch(job: Job): void {
    const net = this.network!;
    clearTimeout(this.idleTimer);
    this.state = "busy";
    this.job = job;
    job.reused = true;
    // The library's timers, as during a one-shot association: the socket's inactivity limit and
    // the PDU timeout, counted from this request rather than from the last one.
    net.socket.setTimeout(net.connectTimeout);
    net.lastPduTime = Date.now();
    net.sendRequests(job.requests);
  }

  /** The library finished every request of the job (answered, or skipped for want of a context). */
  private done(): void {
    const job = this.job;
    if (!job || this.state !== "busy") return;
    this.job = undefined;
    this.state = "idle";
    this.network!.socket.setTimeout(0); // idle is the pool's business (idle_timeout_ms)
    job.resolve();
    if (this.pool.draining) return this.release();
    this.idleTimer = setTimeout(() => this.release(), this.pool.options.idleTimeoutMs);
    this.idleTimer.unref();
    this.pool.pump();
  }

  /** A-RELEASE-RQ; the Client closes the socket on the A-RELEASE-RP, or the timer does. */
  release(): void {
    if (this.state !== "idle") return;
    clearTimeout(this.idleTimer);
    this.state = "closing";
    this.network!.sendAssociationReleaseRequest();
    this.closeTimer = setTimeout(() => this.destroy(), this.network!.connectTimeout);
    this.closeTimer.unref();
  }

  /** The peer releases: fine while idle (we answer and close), a failure mid-request. */
  private peerReleases(): void {
    if (this.state === "idle") {
      clearTimeout(this.idleTimer);
      this.state = "closing";
      this.network!.sendAssociationReleaseResponse();
      this.network!.socket.end();
      return;
    }
    this.fail(
      new HttpError(502, `DICOM peer ${this.job?.peer.calledAet ?? ""} released the association mid-request`, {
        type: problemType("upstream-error"),
      }),
    );
  }

  /** The request in flight (if any) fails; the association is gone at once. */
  fail(e: Error): void {
    const job = this.job;
    this.job = undefined;
    this.destroy();
    if (job) this.pool.failed(job, e);
  }

  /** Rejected association: the job was never sent; the pool says what becomes of it. */
  takeJob(): Job | undefined {
    const job = this.job;
    this.job = undefined;
    return job;
  }

  destroy(): void {
    clearTimeout(this.idleTimer);
    if (this.state !== "closing") this.state = "closing";
    this.network?.socket.destroy();
  }

  private closed(): void {
    clearTimeout(this.idleTimer);
    clearTimeout(this.closeTimer);
    const job = this.job;
    this.job = undefined;
    if (job)
      this.pool.failed(
        job,
        new HttpError(502, `DICOM peer ${job.peer.calledAet} closed the connection`, {
          type: problemType("upstream-error"),
        }),
      );
    this.pool.forget(this);
  }
}

function transportError(peer: PoolPeer, e: Error): HttpError {
  const code = (e as { code?: string }).code;
  const timeout = /timeout/i.test(e.message) || code === "ETIMEDOUT";
  return new HttpError(
    timeout ? 504 : 502,
    `DICOM peer ${peer.calledAet} ${timeout ? "timed out" : "failed"} (${code ?? e.message})`,
    { type: problemType(timeout ? "upstream-timeout" : "upstream-error"), cause: e },
  );
}

export class AssociationPool {
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
  run(peer: PoolPeer, requests: AnyRequest[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const job: Job = { peer, requests, proposal: proposalFor(requests), resolve, reject };
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
        (a) => a.state === "idle" && a.endpoint === endpoint && [...job.proposal].every((s) => a.proposed.has(s)),
      );
      if (fit) {
        // A connection found closed before we wrote to it is dropped; the job stays in line.
        if (fit.writable()) fit.dispatch(this.take(i));
        else fit.destroy();
        continue;
      }
      if (this.all.size < this.limit) {
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

  /** A-ASSOCIATE-RJ. With other associations open, the peer is at its limit: wait for one of those. */
  rejected(a: Pooled, reason: number | undefined): void {
    const job = a.takeJob();
    // Opening ones count: their A-ASSOCIATE-AC may simply not have been read yet.
    const open = [...this.all].filter((x) => x !== a && x.state !== "closing").length;
    a.destroy();
    if (!job) return;
    if (open > 0) {
      this.learnedLimit = open;
      this.wait(job, "head");
      return;
    }
    job.reject(
      new HttpError(502, `DICOM peer ${job.peer.calledAet} rejected the association (reason ${reason ?? "?"})`, {
        type: problemType("dimse-association-rejected"),
      }),
    );
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
