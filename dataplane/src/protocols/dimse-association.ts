/**
 * One pooled DIMSE association (dimse-pool.ts keeps them): opened by dcmjs-dimse's Client with its
 * first requests, then kept open instead of released, later requests sent through the library's
 * Network (`sendRequests`); its state, timers and failures. Also what a request needs of an
 * association: the presentation contexts a fresh one would propose for it.
 */
import type { Socket } from "node:net";
import { HttpError, problemType } from "../pipeline/errors.js";
import { Client, association, constants, requests as dimseRequests, responses } from "./dimse.js";

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
  sendAbort(): void;
  on(event: string, fn: (arg?: unknown) => void): void;
  removeAllListeners(event: string): void;
}

const IMPLICIT_LE = constants.TransferSyntax.ImplicitVRLittleEndian;
const EXPLICIT_LE = constants.TransferSyntax.ExplicitVRLittleEndian;
const MAX_CONTEXTS = 128;
/** Proposed on every pooled association (room permitting), so echoes and queries can share any. */
const COMMON_SOP_CLASSES = [
  constants.SopClass.Verification,
  "1.2.840.10008.5.1.4.1.2.1.1", // Patient Root Q/R FIND
  constants.SopClass.StudyRootQueryRetrieveInformationModelFind,
  constants.SopClass.ModalityWorklistInformationModelFind,
];
const COMMON = COMMON_SOP_CLASSES.map((uid) => `${uid}|${IMPLICIT_LE},${EXPLICIT_LE}`);

/** A proposed context as compared here: abstract syntax and the transfer syntaxes, in order. */
export const signature = (sopClass: string, syntaxes: readonly string[]) => `${sopClass}|${syntaxes.join(",")}`;

const GET_SOP_CLASSES = ["1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3"]; // Patient, Study Root GET
const STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1.";
const retrieving = (p: Set<string>) => [...p].some((s) => GET_SOP_CLASSES.some((g) => s.startsWith(`${g}|`)));
const storageOf = (p: Set<string>) => [...p].filter((s) => s.startsWith(STORAGE_ROOT)).length;

/**
 * Whether a job proposing `job` may go on an association that proposed `assoc`. Every context the
 * job needs must have been proposed; beyond that, storage contexts mean different things on the
 * two kinds of association. One that proposed a C-GET asked for the SCP role on every storage
 * context (dimse.ts: its instances come back as C-STORE sub-operations), so our own C-STOREs
 * never go on it (we did not offer to be the SCU there). A C-GET goes only on an association whose
 * storage contexts are exactly its own: with more, the peer could send an instance in a syntax or
 * class this retrieve did not offer, and the answer would change with the association's history.
 */
export function fits(job: Set<string>, assoc: Set<string>): boolean {
  if (![...job].every((s) => assoc.has(s))) return false;
  if (retrieving(job)) return retrieving(assoc) && storageOf(job) === storageOf(assoc);
  if (storageOf(job) > 0) return !retrieving(assoc);
  return true;
}

function signaturesOf(a: AnyAssociation): Set<string> {
  const out = new Set<string>();
  for (const { id } of a.getPresentationContexts() as { id: number }[]) {
    const c = a.getPresentationContext(id);
    out.add(signature(c.getAbstractSyntaxUid(), c.getTransferSyntaxUids()));
  }
  return out;
}

/** What a fresh association for `requests` would propose: the Client's own computation, run aside. */
export function proposalFor(requests: AnyRequest[]): Set<string> {
  const a = new association.Association("", "");
  for (const r of requests) a.addPresentationContextFromRequest(r, [IMPLICIT_LE, EXPLICIT_LE]);
  return signaturesOf(a);
}

export function contextOf(sig: string): AnyContext {
  const [sopClass, syntaxes] = sig.split("|") as [string, string];
  const [first, ...rest] = syntaxes.split(",");
  const pc = new association.PresentationContext(0, sopClass, first);
  for (const t of rest) pc.addTransferSyntaxUid(t);
  return pc;
}

export const endpointOf = (p: PoolPeer) =>
  JSON.stringify([p.host, p.port, p.calledAet, p.callingAet, p.connectTimeoutMs, p.associationTimeoutMs]);

/** A C-STORE sub-operation of a C-GET, and how to answer it. */
export type StoreHandler = (
  sub: InstanceType<typeof dimseRequests.CStoreRequest>,
  callback: (rsp: InstanceType<typeof responses.CStoreResponse>) => void,
  /** Gives up on the whole exchange: A-ABORT, and the request fails with `e`. */
  abort: (e: Error) => void,
) => void;

/** What a request needs of its association beyond its own contexts. */
export interface ExchangeOptions {
  /** Contexts to propose as well (signatures), such as the storage contexts a C-GET offers. */
  extra?: string[];
  /** Instances a C-GET's peer sends back on the same association. */
  onStore?: StoreHandler;
}

export interface Job extends ExchangeOptions {
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
export const isReadOnly = (r: AnyRequest) =>
  r instanceof dimseRequests.CFindRequest || r instanceof dimseRequests.CEchoRequest;

export type State = "opening" | "busy" | "idle" | "closing";

/** An A-ASSOCIATE-RJ's fields (PS3.8 Table 9-21): result 1 permanent, 2 transient. */
export interface Rejection {
  result?: number;
  source?: number;
  reason?: number;
}

/** What an association needs of its pool. */
export interface Owner {
  readonly options: PoolOptions;
  readonly draining: boolean;
  /** The peer refused the association (A-ASSOCIATE-RJ). */
  rejected(a: Pooled, rj: Rejection): void;
  /** The association under `job` failed with `e`. */
  failed(job: Job, e: Error): void;
  /** The connection closed: the association leaves the pool. */
  forget(a: Pooled): void;
  /** An association came free. */
  pump(): void;
  /** The peer took an association. */
  accepted(): void;
}

/** One association of the pool. */
export class Pooled {
  state: State = "opening";
  job: Job | undefined;
  proposed = new Set<string>();
  network: Network | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly endpoint: string,
    private readonly pool: Owner,
  ) {}

  /** Opens the association with `job`'s requests as its first. */
  open(job: Job): void {
    const { peer } = job;
    this.job = job;
    const client = new Client();
    for (const r of job.requests) client.addRequest(r);
    for (const s of job.extra ?? []) client.addAdditionalPresentationContext(contextOf(s), true);
    const extra = COMMON.filter((s) => !job.proposal.has(s));
    const room = job.proposal.size + extra.length <= MAX_CONTEXTS;
    if (room) for (const s of extra) client.addAdditionalPresentationContext(contextOf(s), true);
    // What the Client proposes (the A-ASSOCIATE-AC rewrites each context's syntaxes to the
    // accepted one, so this is recorded now rather than read back later).
    this.proposed = new Set([...job.proposal, ...(room ? extra : [])]);
    client.on("associationAccepted", () => {
      this.state = "busy";
      this.pool.accepted();
    });
    client.on("associationRejected", (r: Rejection) => this.pool.rejected(this, r));
    client.on("networkError", (e: Error) => this.fail(transportError(peer, e)));
    client.on("closed", () => this.closed());
    // C-GET sub-operations: the job in flight takes them; with none (nothing asked for instances
    // here), each is refused, as a requestor that offered no storage role would.
    client.on("cStoreRequest", (sub: Parameters<StoreHandler>[0], callback: Parameters<StoreHandler>[1]) => {
      const onStore = this.job?.onStore;
      if (onStore) return onStore(sub, callback, (e) => this.abort(e));
      const rsp = responses.CStoreResponse.fromRequest(sub);
      rsp.setStatus(0xa700);
      callback(rsp);
    });
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

  /** We give up on the request in flight: A-ABORT, then the connection closes (or the timer does). */
  abort(e: Error): void {
    const job = this.job;
    this.job = undefined;
    clearTimeout(this.idleTimer);
    if (this.state !== "closing") {
      this.state = "closing";
      this.network?.sendAbort();
      this.network?.socket.end();
      this.closeTimer = setTimeout(() => this.destroy(), this.network?.connectTimeout ?? 1000);
      this.closeTimer.unref();
    }
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
