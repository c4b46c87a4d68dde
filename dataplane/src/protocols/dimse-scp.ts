/**
 * The gateway's DIMSE service provider. The listener (dimse-listener.ts) hands each association
 * to a GatewayScp, which checks who is calling, then turns each operation into the DICOMweb request it stands
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
import type { Socket } from "node:net";
import dcmjs from "dcmjs";
import type { InternalRun } from "../plugins/types.js";
import type { ProxyResponse } from "../pipeline/context.js";
import { Dataset, RawDataset, Scp, constants, requests, responses } from "./dimse.js";
import { cStore, type Peer, type StoreItem } from "./dimse-client.js";
import type { DicomJsonDataset } from "./dicom-json.js";
import { findQuery, str, uniqueBy, type Elements } from "./dimse-find-query.js";
import type { ScpHost, ScpSettings } from "./dimse-scp-settings.js";
import { FIND, GET, MOVE, STORAGE_ROOT, VERIFICATION, WORKLIST } from "./dimse-sop-classes.js";
import { Part10Error, parsePart10, toPart10 } from "./part10.js";
import { Progress, retrieveInstances, type RunAs } from "./scp-retrieve.js";
import { bodyOf, dimseStatusFor, drain } from "./scp-response.js";
import { keepInstance } from "./scp-storage.js";
import { storageSyntaxes } from "./storage-acceptance.js";
import { ERROR_COMMENT_HEADER, isSuccess, isWarning } from "./dimse-status.js";
import { refusal } from "../network/dimse-gate.js";
import type { Identity } from "../network/identity.js";
import type { DicomCommand } from "../network/operations.js";

const { PresentationContextResult: PCR, RejectResult, RejectSource, RejectReason, Status, TransferSyntax } = constants;

const UNCOMPRESSED = [TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian];
/** PS3.7 C.5.x general status: "Refused: SOP Class not supported". */
const SOP_CLASS_NOT_SUPPORTED = 0x0122;

export class GatewayScp extends Scp {
  private calling = "";
  private address: string | undefined;

  constructor(
    socket: Socket,
    private readonly listener: ScpHost,
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

  /** Runs a request through the pipeline for one operation of this association. */
  private readonly runAs: RunAs = (op, req) => this.run({ ...req, clientAddress: this.address, label: this.label(op) });

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
    callback = this.answerOnce("C-FIND", this.inOneWrite(callback));
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
      // Built in the syntax the context was accepted in: in any other, the library would
      // transcode each match through a decode/encode round trip before sending it.
      const ts = this.acceptedSyntaxFor(request);
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
        r.setDataset(new Dataset(out, ts));
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
      const { status, expected, instances } = await retrieveInstances("C-GET", request, this.runAs);
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

  /** The transfer syntax of the context `request` arrived on (undefined: the library's default). */
  private acceptedSyntaxFor(request: unknown): string | undefined {
    const ctx = this.acceptedContextFor(request) as { getAcceptedTransferSyntaxUid(): string } | undefined;
    return ctx?.getAcceptedTransferSyntaxUid();
  }

  /**
   * `send` writes its responses corked: all the matches and the final response of a C-FIND leave
   * as one writev (one TCP segment while they fit), not two writes per match.
   */
  private inOneWrite<A extends unknown[]>(send: (...a: A) => void): (...a: A) => void {
    return (...a) => {
      const socket = (this as unknown as { socket: Socket }).socket;
      socket.cork();
      try {
        send(...a);
      } finally {
        socket.uncork();
      }
    };
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
      const { status, expected, instances } = await retrieveInstances("C-MOVE", request, this.runAs);
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
