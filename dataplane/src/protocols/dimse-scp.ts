/**
 * The gateway's DIMSE service provider. A TCP listener (bound where the config says, unlike
 * dcmjs-dimse's own Server, which binds every interface) hands each connection to a GatewayScp.
 * The SCP checks who is calling, then turns each operation into the DICOMweb request it stands
 * for and runs it through the pipeline:
 *
 *   C-ECHO  → answered here (the association itself is the check)
 *   C-FIND  → QIDO-RS GET /studies | /series | /instances   (PATIENT level: studies, grouped)
 *   C-STORE → STOW-RS POST /studies, one Part 10 instance
 *   C-GET   → WADO-RS GET, each instance sent back as a C-STORE sub-operation on this association
 *   C-MOVE  → WADO-RS GET, each instance C-STOREd to the destination AE from the peer table
 *
 * Whatever the backend is (a DICOMweb origin, another DIMSE peer through the `dicom` backend),
 * middleware sees one kind of request. HTTP statuses become DIMSE statuses on the way back.
 */
import { createServer, type Server as NetServer, type Socket } from "node:net";
import {
  createServer as createTlsServer,
  type Server as TlsServer,
  type TlsOptions as TlsServerOptions,
  type TLSSocket,
} from "node:tls";
import { Readable } from "node:stream";
import dcmjs from "dcmjs";
import type { Logger } from "winston";
import type { InternalRun } from "../plugins/types.js";
import type { ProxyResponse } from "../pipeline/context.js";
import { Dataset, RawDataset, Scp, constants, requests, responses, type DimseDataset } from "./dimse.js";
import { cStore, type Peer, type StoreItem } from "./dimse-client.js";
import { acceptWith } from "./dimse-link.js";
import { AssociationSlots } from "./dimse-limits.js";
import { attribute, type DicomJsonDataset } from "./dicom-json.js";
import { boundaryOf, readParts } from "./multipart.js";
import { Part10Error, parsePart10, toPart10 } from "./part10.js";
import { Progress, planRetrieve } from "./scp-retrieve.js";
import { keepInstance } from "./scp-storage.js";
import { storageSyntaxes } from "./storage-acceptance.js";
import { ERROR_COMMENT_HEADER, isSuccess, isWarning } from "./dimse-status.js";
import { admitPeer, refusal, type DimseGate } from "../network/dimse-gate.js";
import type { Identity } from "../network/identity.js";
import type { DicomCommand } from "../network/operations.js";

export interface MoveDestination {
  host: string;
  port: number;
  /** AE title called on the sub-association. */
  aet: string;
}

export interface ScpSettings {
  aet: string;
  /** Calling AE titles allowed to associate; empty = any. */
  allowedAets: string[];
  /** Reject associations addressed to another AE title. */
  checkCalledAet: boolean;
  /** C-MOVE destinations: Move Destination AE title → host, port and the AE title called there. */
  peers: Record<string, MoveDestination>;
  maxPduLength: number;
  /** "upstream": a C-ECHO is passed on (OPTIONS through the pipeline), so it checks the whole path. */
  echo: "local" | "upstream";
  /** DIMSE services offered; a disabled one's SOP classes are rejected at association. */
  services: Record<"echo" | "find" | "get" | "move" | "store", boolean>;
  /** Where received C-STOREs are also written (scp-storage.ts); undefined: nowhere. */
  storageDir: string | undefined;
  /** No PDU either way for this long on an association: A-ABORT. */
  associationTimeoutMs: number;
  /** ARTIM (PS3.8 §9.1.5): connect → association request, and our close → the peer's. */
  artimTimeoutMs: number;
  /** An association's whole life; 0: no limit. */
  associationMaxMs: number;
  /** Connections at once on this listener, and from one peer address; 0: no cap. */
  maxAssociations: number;
  maxAssociationsPerPeer: number;
  /** Largest data set one C-STORE may carry. */
  maxInstanceBytes: number;
  connectTimeoutMs: number;
  storeBatchBytes: number;
  logger: Logger;
  /** On a harmony_network listener: peer identity and network policy (network/dimse-gate.ts). */
  network?: DimseGate;
}

/** TLS material of a listener serving DICOM over TLS (a harmony_network identity and bundle). */
export interface DimseTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

const { PresentationContextResult: PCR, RejectResult, RejectSource, RejectReason, Status, TransferSyntax } = constants;

const VERIFICATION = "1.2.840.10008.1.1";
const FIND = ["1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.2.1"]; // patient root, study root
const WORKLIST = "1.2.840.10008.5.1.4.31";
const MOVE = ["1.2.840.10008.5.1.4.1.2.1.2", "1.2.840.10008.5.1.4.1.2.2.2"];
const GET = ["1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3"];
/** Every storage SOP class lives under this root (PS3.4 B.5). */
const STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1.";
const UNCOMPRESSED = [TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian];
/** PS3.7 C.5.x general status: "Refused: SOP Class not supported". */
const SOP_CLASS_NOT_SUPPORTED = 0x0122;

/** HTTP status of the pipeline's answer → DIMSE failure status (PS3.4 C.4, Harmony's mapping). */
export function dimseStatusFor(http: number): number {
  if (http >= 200 && http < 300) return Status.Success;
  if (http === 401 || http === 403) return Status.NotAuthorized;
  if (http === 413 || http === 507) return 0xa700; // out of resources
  if (http === 400 || http === 404 || http === 415 || http === 422) return 0xc000; // unable to process
  if (http === 409) return 0xa700;
  return 0xc001; // processing failure upstream (C-FIND: unable to process)
}

/** Refused connections allowed to linger beyond `maxAssociations` (see DimseListener.bound). */
const REFUSED_ROOM = 64;

/** One per bound address; config generations re-point it instead of re-binding. */
export class DimseListener {
  private server: NetServer | undefined;
  private listening: Promise<void> | undefined;
  settings: ScpSettings | undefined;
  run: InternalRun | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly slots = new AssociationSlots();

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly logger: Logger,
    /** DICOM over TLS with a client certificate required; updated by configure() on rotation. */
    private tls?: DimseTls,
  ) {}

  /** Binds once; rejects (and may be tried again) when the address cannot be bound. */
  bind(): Promise<void> {
    this.listening ??= this.listen().catch((e: unknown) => {
      this.listening = undefined;
      this.server = undefined;
      throw e;
    });
    return this.listening;
  }

  isListening(): boolean {
    return this.server?.listening === true;
  }

  configure(settings: ScpSettings, run: InternalRun, tls?: DimseTls): void {
    this.settings = settings;
    this.run = run;
    this.bound();
    if (tls && this.tls && !sameTls(tls, this.tls)) {
      // A rotated identity or bundle: new handshakes use it, associations already open go on.
      this.tls = tls;
      (this.server as TlsServer | undefined)?.setSecureContext(tlsOptions(tls));
      settings.logger.info("DICOM TLS certificate reloaded", { address: this.host, port: this.boundPort() });
    }
  }

  private listen(): Promise<void> {
    const accept = (socket: Socket) => {
      // Bound for a generation that has not gone live yet (its reload may still fail): not ours to serve.
      if (!this.settings || !this.run) return socket.destroy();
      const s = this.settings;
      let peer: Identity | undefined;
      if (this.tls) {
        peer = s.network ? admitPeer(s.network, socket as TLSSocket, s.logger) : undefined;
        if (!peer) return socket.destroy();
      }
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      const full = this.slots.take(socket, { total: s.maxAssociations, perPeer: s.maxAssociationsPerPeer });
      if (full) {
        s.logger.warn("DICOM association refused: too many connections", { client: socket.remoteAddress, cap: full });
        return;
      }
      // Framing caps and the ARTIM, idle and lifetime timers of protocols/dimse-link.ts.
      acceptWith(socket, {
        artimMs: s.artimTimeoutMs,
        idleMs: s.associationTimeoutMs,
        maxMs: s.associationMaxMs,
        maxMessageBytes: s.maxInstanceBytes,
        log: (message, fields) => this.settings?.logger.warn(message, fields),
      });
      // The SCP reads settings and pipeline when each association arrives: reloads apply to new ones.
      new GatewayScp(
        socket,
        this,
        {
          associationTimeout: s.associationTimeoutMs,
          pduTimeout: s.associationTimeoutMs,
          connectTimeout: s.connectTimeoutMs,
        },
        peer,
      );
    };
    let server: NetServer;
    if (this.tls) {
      const tlsServer = createTlsServer(tlsOptions(this.tls));
      tlsServer.on("secureConnection", accept);
      tlsServer.on("tlsClientError", (e: Error, socket: TLSSocket) =>
        this.logger.debug("DICOM TLS handshake refused", { client: socket.remoteAddress, error: e.message }),
      );
      server = tlsServer;
    } else server = createServer(accept);
    this.server = server;
    this.bound();
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      // exclusive: in a worker of a group this process binds the port, not the cluster primary.
      server.listen({ port: this.port, host: this.host, exclusive: true }, () => {
        server.off("error", reject);
        // An error after listening (EMFILE on accept) must not become an uncaught exception.
        server.on("error", (e) => this.logger.error("DICOM listener error", { address: this.host, error: e.message }));
        this.logger.info("DICOM listener started", { address: this.host, port: this.boundPort() });
        resolve();
      });
    });
  }

  /**
   * Refused connections linger a moment to read their A-ASSOCIATE-RJ; past this many in all, the
   * kernel-level accept is dropped outright, so a flood costs no more descriptors than this.
   */
  private bound(): void {
    const cap = this.settings?.maxAssociations ?? 0;
    if (this.server) this.server.maxConnections = cap > 0 ? cap + REFUSED_ROOM : Infinity;
  }

  boundPort(): number | undefined {
    const a = this.server?.address();
    return typeof a === "object" && a ? a.port : undefined;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

function tlsOptions(t: DimseTls): TlsServerOptions {
  // The handshake itself refuses a peer without a certificate of the network's CAs.
  return { cert: t.cert, key: t.key, ca: t.ca, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" };
}

const sameTls = (a: DimseTls, b: DimseTls) => a.cert.equals(b.cert) && a.key.equals(b.key) && a.ca.equals(b.ca);

type Elements = Record<string, unknown>;
interface AnyRequest {
  getDataset(): DimseDataset | undefined;
  getCommandDataset(): DimseDataset;
  getAffectedSopClassUid(): string;
  getAffectedSopInstanceUid(): string;
}

class GatewayScp extends Scp {
  private calling = "";
  private address: string | undefined;

  constructor(
    socket: Socket,
    private readonly listener: DimseListener,
    opts: Record<string, unknown>,
    /** The verified peer gateway, on a harmony_network listener. */
    private readonly peer?: Identity,
  ) {
    super(socket, opts);
    this.address = socket.remoteAddress;
  }

  /**
   * Network policy for one DIMSE command: undefined when it may run, else the Error Comment of
   * its refusal (sent with status 0x0124, Refused: Not Authorized).
   */
  private refused(command: DicomCommand): string | undefined {
    const gate = this.s.network;
    if (!gate || !this.peer) return undefined;
    return refusal(gate, this.peer, command, this.calling, this.s.logger);
  }

  /** Answers a refused command: `fresh` makes the protocol's response for the request. */
  private refuse<R extends { setStatus(s: number): void; setErrorComment(c: string): void }>(
    fresh: () => R,
    comment: string,
  ): R {
    const r = fresh();
    r.setStatus(Status.NotAuthorized);
    r.setErrorComment(comment);
    return r;
  }

  private get s(): ScpSettings {
    return this.listener.settings!;
  }

  override associationRequested(association: InstanceType<typeof import("dcmjs-dimse").association.Association>): void {
    const s = this.s;
    this.calling = association.getCallingAeTitle().trim();
    const called = association.getCalledAeTitle().trim();
    if (s.checkCalledAet && called !== s.aet) {
      s.logger.warn("DICOM association rejected: called AE title", {
        calling: this.calling,
        called,
        client: this.address,
      });
      this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized);
      return;
    }
    if (s.allowedAets.length && !s.allowedAets.includes(this.calling)) {
      s.logger.warn("DICOM association rejected: calling AE title not allowed", {
        calling: this.calling,
        client: this.address,
      });
      this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized);
      return;
    }
    association.setMaxPduLength(s.maxPduLength);
    const storage = storageSyntaxes(association, STORAGE_ROOT);
    for (const c of association.getPresentationContexts()) {
      const ctx = association.getPresentationContext(c.id);
      const uid = ctx.getAbstractSyntaxUid();
      const proposed = ctx.getTransferSyntaxUids();
      const on = s.services;
      const serviceClass =
        (on.echo && uid === VERIFICATION) ||
        (on.find && (uid === WORKLIST || FIND.includes(uid))) ||
        (on.move && MOVE.includes(uid)) ||
        (on.get && GET.includes(uid));
      if (serviceClass) {
        const ts = UNCOMPRESSED.find((t) => proposed.includes(t));
        if (ts) ctx.setResult(PCR.Accept, ts);
        else ctx.setResult(PCR.RejectTransferSyntaxesNotSupported);
      } else if (uid.startsWith(STORAGE_ROOT) && (on.store || on.get)) {
        // C-GET sends its instances back over storage contexts the SCU proposed, so with C-GET on they
        // are accepted even when C-STORE is off (cStoreRequest then refuses each C-STORE).
        // Stored instances are relayed, not decoded: see storage-acceptance.ts for the choice.
        ctx.setResult(PCR.Accept, storage.get(c.id) ?? proposed[0]);
      } else {
        ctx.setResult(PCR.RejectAbstractSyntaxNotSupported);
      }
    }
    this.sendAssociationAccept();
  }

  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }

  override cEchoRequest(
    request: InstanceType<typeof requests.CEchoRequest>,
    callback: (r: InstanceType<typeof responses.CEchoResponse>) => void,
  ): void {
    callback = this.answerOnce("C-ECHO", callback);
    const echoDenied = this.refused("C-ECHO");
    if (echoDenied) return callback(this.refuse(() => responses.CEchoResponse.fromRequest(request), echoDenied));
    const rsp = responses.CEchoResponse.fromRequest(request);
    if (this.s.echo === "local") {
      rsp.setStatus(Status.Success);
      return callback(rsp);
    }
    void this.run({
      method: "OPTIONS",
      path: "/",
      search: "",
      headers: {},
      clientAddress: this.address,
      label: this.label("C-ECHO"),
    }).then(
      (res) => {
        drain(res);
        rsp.setStatus(res.status >= 200 && res.status < 300 ? Status.Success : 0x0110);
        callback(rsp);
      },
      () => {
        rsp.setStatus(0x0110);
        callback(rsp);
      },
    );
  }

  private run(req: Parameters<InternalRun>[0]): Promise<ProxyResponse> {
    return this.listener.run!(req);
  }

  private label(op: string): string {
    return `${op} ${this.calling}→${this.s.aet}`;
  }

  /**
   * dcmjs-dimse's response callback may run once, and it throws inside the library when called
   * again; nothing one association does may take the process down, so every callback goes through here.
   */
  private answerOnce<A extends unknown[]>(op: string, cb: (...a: A) => void): (...a: A) => void {
    let called = false;
    return (...a) => {
      if (called) return;
      called = true;
      try {
        cb(...a);
      } catch (e) {
        this.s.logger.error("DIMSE response could not be sent", { operation: op, error: String(e) });
      }
    };
  }

  private sendPending(
    op: string,
    request: Parameters<InstanceType<typeof Scp>["sendResponse"]>[0],
    rsp: Parameters<InstanceType<typeof Scp>["sendResponse"]>[1],
  ): void {
    try {
      this.sendResponse(request, rsp);
    } catch (e) {
      this.s.logger.error("DIMSE pending response could not be sent", { operation: op, error: String(e) });
    }
  }

  override cFindRequest(
    request: InstanceType<typeof requests.CFindRequest>,
    callback: (r: InstanceType<typeof responses.CFindResponse>[]) => void,
  ): void {
    callback = this.answerOnce("C-FIND", callback);
    const findDenied = this.refused("C-FIND");
    if (findDenied) return callback([this.refuse(() => responses.CFindResponse.fromRequest(request), findDenied)]);
    const final = (status: number) => {
      const r = responses.CFindResponse.fromRequest(request);
      r.setStatus(status);
      return r;
    };
    void (async () => {
      const elements = request.getDataset()?.getElements() ?? {};
      const q = findQuery(elements, request.getAffectedSopClassUid());
      if (!q) return callback([final(0xa900)]); // identifier does not match SOP class
      const res = await this.run({
        method: "GET",
        path: q.path,
        search: q.search,
        headers: { accept: "application/dicom+json" },
        clientAddress: this.address,
        label: this.label("C-FIND"),
      });
      if (res.status === 204) return callback([final(Status.Success)]);
      if (res.status !== 200) {
        drain(res);
        return callback([final(dimseStatusFor(res.status))]);
      }
      let matches = JSON.parse((await bodyOf(res)).toString("utf8")) as DicomJsonDataset[];
      if (q.patientLevel) matches = uniqueBy(matches, "00100020");
      const wanted = new Set(Object.keys(elements));
      const pending = matches.map((m) => {
        const natural = dcmjs.data.DicomMetaDictionary.naturalizeDataset(m);
        // dcmjs writes strings as UTF-8, so that is what the response declares, whatever the
        // origin's set was (DICOM JSON is UTF-8 already, PS3.18 F.2).
        const out: Elements = {
          ...(q.level ? { QueryRetrieveLevel: q.level } : {}),
          SpecificCharacterSet: "ISO_IR 192",
        };
        for (const [k, v] of Object.entries(natural))
          if (wanted.has(k) && k !== "QueryRetrieveLevel" && k !== "SpecificCharacterSet") out[k] = v;
        const r = responses.CFindResponse.fromRequest(request);
        r.setDataset(new Dataset(out));
        r.setStatus(Status.Pending);
        return r;
      });
      callback([...pending, final(Status.Success)]);
    })().catch((e: unknown) => {
      this.s.logger.error("C-FIND failed", { error: String(e), calling: this.calling });
      callback([final(0xc001)]);
    });
  }

  override cStoreRequest(
    request: InstanceType<typeof requests.CStoreRequest>,
    callback: (r: InstanceType<typeof responses.CStoreResponse>) => void,
  ): void {
    callback = this.answerOnce("C-STORE", callback);
    const storeDenied = this.refused("C-STORE");
    if (storeDenied) return callback(this.refuse(() => responses.CStoreResponse.fromRequest(request), storeDenied));
    const rsp = responses.CStoreResponse.fromRequest(request);
    if (!this.s.services.store) {
      this.s.logger.warn("C-STORE refused: enable_store is off", { calling: this.calling });
      rsp.setStatus(SOP_CLASS_NOT_SUPPORTED);
      return callback(rsp);
    }
    void (async () => {
      const ds = request.getDataset()!;
      const bytes = ds instanceof RawDataset && ds.bytes ? ds.bytes : ds.getDenaturalizedDataset();
      const file = toPart10(
        {
          transferSyntax: ds.getTransferSyntaxUid(),
          sopClass: request.getAffectedSopClassUid(),
          sopInstance: request.getAffectedSopInstanceUid(),
          dataset: bytes,
        },
        this.calling,
      );
      if (this.s.storageDir !== undefined) {
        const kept = await keepInstance(this.s.storageDir, file, request.getAffectedSopInstanceUid());
        if (kept !== undefined) {
          this.s.logger.warn("C-STORE refused: not written to storage_dir", {
            reason: kept.reason,
            calling: this.calling,
          });
          rsp.setStatus(kept.status);
          return callback(rsp);
        }
      }
      const boundary = `harmony-${request.getAffectedSopInstanceUid()}`;
      const body = Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
        file,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      const res = await this.run({
        method: "POST",
        path: "/studies",
        search: "",
        headers: {
          "content-type": `multipart/related; type="application/dicom"; boundary=${boundary}`,
          accept: "application/dicom+json",
        },
        body,
        clientAddress: this.address,
        label: this.label("C-STORE"),
      });
      let status = dimseStatusFor(res.status);
      const text = (await bodyOf(res)).toString("utf8");
      // A DIMSE peer behind the backend said why (a network policy names its rule): passed on.
      const comment = res.headers[ERROR_COMMENT_HEADER];
      if (res.status === 202 || res.status === 409) {
        // The origin says why in FailedSOPSequence (0008,1198) > FailureReason (0008,1197).
        try {
          const failed = (JSON.parse(text) as DicomJsonDataset)["00081198"]?.Value as DicomJsonDataset[] | undefined;
          const reason = failed?.[0]?.["00081197"]?.Value?.[0];
          status = typeof reason === "number" ? reason : 0xc000;
        } catch {
          status = 0xc000;
        }
      }
      rsp.setStatus(status);
      if (typeof comment === "string" && !isSuccess(status) && !isWarning(status))
        rsp.setErrorComment(comment.slice(0, 64));
      callback(rsp);
    })().catch((e: unknown) => {
      this.s.logger.error("C-STORE failed", { error: String(e), calling: this.calling });
      rsp.setStatus(0xa700);
      callback(rsp);
    });
  }

  /** QIDO-RS through the pipeline, for planning a retrieve (scp-retrieve.ts). */
  private async search(op: string, path: string, search: string): Promise<DicomJsonDataset[] | undefined> {
    const res = await this.run({
      method: "GET",
      path,
      search,
      headers: { accept: "application/dicom+json" },
      clientAddress: this.address,
      label: this.label(op),
    });
    if (res.status === 204) return [];
    if (res.status !== 200) {
      drain(res);
      return undefined;
    }
    return JSON.parse((await bodyOf(res)).toString("utf8")) as DicomJsonDataset[];
  }

  /** Runs the WADO-RS retrieves the identifier stands for and yields the Part 10 instances as they stream in. */
  private async retrieve(
    op: "C-GET" | "C-MOVE",
    request: AnyRequest,
  ): Promise<{ status: number; expected?: string[]; instances?: AsyncGenerator<Buffer> }> {
    const el = request.getDataset()?.getElements() ?? {};
    const plan = await planRetrieve(el, request.getAffectedSopClassUid(), (path, search) =>
      this.search(op, path, search),
    );
    if ("status" in plan) return plan;
    const fetchOne = async (path: string) => {
      const res = await this.run({
        method: "GET",
        path,
        search: "",
        // As stored: an origin asked for its default (Explicit VR Little Endian) transcodes, and fails
        // on what it cannot decode; sub-operations transcode uncompressed data themselves (dimse.ts).
        headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
        clientAddress: this.address,
        label: this.label(op),
      });
      const boundary = boundaryOf(String(res.headers["content-type"] ?? ""));
      if ((res.status !== 200 && res.status !== 206) || !boundary || !res.body) {
        drain(res);
        return { status: res.status };
      }
      return { status: res.status, source: Buffer.isBuffer(res.body) ? Readable.from([res.body]) : res.body, boundary };
    };
    // The first retrieve is made before answering, so that a failure of the only one is a status.
    const first = plan.paths.length ? await fetchOne(plan.paths[0]!) : undefined;
    if (plan.paths.length === 1 && first && !first.source && first.status !== 404)
      return { status: dimseStatusFor(first.status) || 0xc000 };
    const rest = plan.paths.slice(1);
    async function* instances() {
      for (let next = first; next;) {
        if (next.source)
          for await (const part of readParts(next.source, next.boundary, 4 * 1024 * 1024 * 1024)) yield part.body;
        const path = rest.shift();
        next = path ? await fetchOne(path) : undefined;
      }
    }
    return { status: Status.Success, expected: plan.expected, instances: instances() };
  }

  override cGetRequest(
    request: InstanceType<typeof requests.CGetRequest>,
    callback: (r: InstanceType<typeof responses.CGetResponse>[]) => void,
  ): void {
    callback = this.answerOnce("C-GET", callback);
    const getDenied = this.refused("C-GET");
    if (getDenied) return callback([this.refuse(() => responses.CGetResponse.fromRequest(request), getDenied)]);
    const progress = new Progress();
    const respond = (status: number) => progress.fill(responses.CGetResponse.fromRequest(request), status);
    void (async () => {
      const { status, expected, instances } = await this.retrieve("C-GET", request);
      if (!instances) return callback([respond(status)]);
      progress.expect(expected);
      for await (const file of instances) {
        let p10;
        try {
          p10 = parsePart10(file);
        } catch (e) {
          if (!(e instanceof Part10Error)) throw e;
          progress.done(undefined, -1);
          continue;
        }
        const sub = new requests.CStoreRequest(
          new RawDataset(p10.dataset, p10.transferSyntax, {
            SOPClassUID: p10.sopClass,
            SOPInstanceUID: p10.sopInstance,
          }).seal(),
        );
        // No context for its SOP class at all: dcmjs-dimse would skip it without a word (and this
        // would wait forever); it is a failed sub-operation.
        if (!this.acceptedContextFor(sub)) {
          progress.done(p10.sopInstance, -1);
          this.sendPending("C-GET", request, respond(Status.Pending));
          continue;
        }
        const st = await new Promise<number>((resolve) => {
          sub.on("response", (r: { getStatus(): number }) => resolve(r.getStatus()));
          sub.on("done", () => resolve(-1));
          this.sendRequests(sub);
        });
        progress.done(p10.sopInstance, st);
        // The library's callback may be called once only (the final response); pendings go direct.
        this.sendPending("C-GET", request, respond(Status.Pending));
      }
      callback([respond(progress.finalStatus())]);
    })().catch((e: unknown) => {
      this.s.logger.error("C-GET failed", { error: String(e), calling: this.calling });
      callback([respond(0xa701)]);
    });
  }

  private acceptedContextFor(request: unknown): unknown {
    const a = (this as unknown as { association?: { getAcceptedPresentationContextFromRequest(r: unknown): unknown } })
      .association;
    return a?.getAcceptedPresentationContextFromRequest(request);
  }

  override cMoveRequest(
    request: InstanceType<typeof requests.CMoveRequest>,
    callback: (r: InstanceType<typeof responses.CMoveResponse>[]) => void,
  ): void {
    callback = this.answerOnce("C-MOVE", callback);
    const moveDenied = this.refused("C-MOVE");
    if (moveDenied) return callback([this.refuse(() => responses.CMoveResponse.fromRequest(request), moveDenied)]);
    const progress = new Progress();
    const respond = (status: number) => progress.fill(responses.CMoveResponse.fromRequest(request), status);
    void (async () => {
      const destination = str(request.getCommandDataset().getElement("MoveDestination"))?.trim() ?? "";
      // Own keys only: a Move Destination of "__proto__" or "constructor" names no peer.
      const to = Object.hasOwn(this.s.peers, destination) ? this.s.peers[destination] : undefined;
      if (!to) {
        this.s.logger.warn("C-MOVE to an unknown destination", { destination, calling: this.calling });
        return callback([respond(Status.MoveDestinationUnknown)]);
      }
      const { status, expected, instances } = await this.retrieve("C-MOVE", request);
      if (!instances) return callback([respond(status)]);
      progress.expect(expected);
      const peer: Peer = {
        host: to.host,
        port: to.port,
        calledAet: to.aet,
        callingAet: this.s.aet,
        connectTimeoutMs: this.s.connectTimeoutMs,
        associationTimeoutMs: this.s.associationTimeoutMs,
      };
      let batch: StoreItem[] = [];
      let bytes = 0;
      const flush = async () => {
        if (!batch.length) return;
        const statuses = await cStore(peer, batch).catch((e: unknown) => {
          this.s.logger.warn("C-MOVE sub-association failed", { destination, error: String(e) });
          return batch.map(() => -1);
        });
        statuses.forEach((st, i) => progress.done(batch[i]!.sopInstance, st));
        batch = [];
        bytes = 0;
        this.sendPending("C-MOVE", request, respond(Status.Pending));
      };
      for await (const file of instances) {
        try {
          const p10 = parsePart10(file);
          batch.push(p10);
          bytes += p10.dataset.length;
        } catch (e) {
          if (!(e instanceof Part10Error)) throw e;
          progress.done(undefined, -1);
        }
        if (bytes >= this.s.storeBatchBytes) await flush();
      }
      await flush();
      callback([respond(progress.finalStatus())]);
    })().catch((e: unknown) => {
      this.s.logger.error("C-MOVE failed", { error: String(e), calling: this.calling });
      callback([respond(0xa701)]);
    });
  }
}

function str(v: unknown): string | undefined {
  if (typeof v === "string" && v !== "") return v;
  if (Array.isArray(v) && typeof v[0] === "string") return v[0];
  return undefined;
}

function findQuery(
  el: Elements,
  sopClass: string,
): { path: string; search: string; level: string | undefined; patientLevel: boolean } | undefined {
  const worklist = sopClass === WORKLIST;
  const level = worklist ? "WORKLIST" : (str(el.QueryRetrieveLevel)?.trim().toUpperCase() ?? "STUDY");
  // The Study Root model has no PATIENT level (PS3.4 §C.6.2): "identifier does not match SOP class".
  if (level === "PATIENT" && sopClass !== FIND[0]) return undefined;
  const study = str(el.StudyInstanceUID);
  const series = str(el.SeriesInstanceUID);
  let path: string;
  if (worklist) path = "/workitems";
  else if (level === "PATIENT" || level === "STUDY") path = "/studies";
  else if (level === "SERIES") path = study && !study.includes("\\") ? `/studies/${study}/series` : "/series";
  else if (level === "IMAGE")
    path =
      study && series && !study.includes("\\") && !series.includes("\\")
        ? `/studies/${study}/series/${series}/instances`
        : "/instances";
  else return undefined;
  const params = new URLSearchParams();
  const include: string[] = [];
  // Keys inside a sequence item become dotted paths (PS3.18 8.3.4.1: "SequenceKeyword.Keyword").
  const walk = (elements: Elements, prefix: string) => {
    for (const [k, v] of Object.entries(elements)) {
      if (k === "QueryRetrieveLevel" || k === "SpecificCharacterSet" || k.startsWith("_")) continue;
      const a = attribute(k);
      if (!a) continue;
      if (a.vr === "SQ") {
        const item = Array.isArray(v) ? (v[0] as Elements | undefined) : undefined;
        if (item && Object.keys(item).some((x) => !x.startsWith("_"))) walk(item, `${prefix}${k}.`);
        else include.push(prefix + k);
        continue;
      }
      if (!prefix && (path.includes(`/${str(v)}/`) || path.endsWith(`/${str(v)}`))) continue; // already in the path
      const value = pnOrString(v);
      if (value === undefined || value === "") include.push(prefix + k);
      else params.append(prefix + k, value.split("\\").join(a.vr === "UI" ? "," : "\\"));
    }
  };
  walk(el, "");
  // One parameter per attribute: PS3.18 §8.3.4.3 allows a comma list too, but origins such as
  // Orthanc read only the repeated form.
  for (const k of include) params.append("includefield", k);
  const search = params.toString();
  return {
    path,
    search: search ? `?${search}` : "",
    level: worklist ? undefined : level,
    patientLevel: level === "PATIENT",
  };
}

function pnOrString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) {
    const parts = v.map((x) =>
      typeof x === "object" && x && "Alphabetic" in x ? String((x as { Alphabetic: unknown }).Alphabetic) : String(x),
    );
    return parts.join("\\");
  }
  if (v && typeof v === "object" && "Alphabetic" in v) return String(v.Alphabetic);
  return undefined;
}

function uniqueBy(list: DicomJsonDataset[], tag: string): DicomJsonDataset[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const k = JSON.stringify(d[tag]?.Value ?? null);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

async function bodyOf(res: ProxyResponse): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  if (Buffer.isBuffer(res.body)) return res.body;
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function drain(res: ProxyResponse): void {
  if (res.body && !Buffer.isBuffer(res.body)) res.body.resume();
}
