/**
 * Where a `dicom` backend in C-MOVE mode receives what it asked for: a C-STORE SCP on the port
 * and AE title the PACS knows as the move destination. The sub-operations of a C-MOVE carry no
 * reliable link to the request that caused them (every new association numbers its messages from
 * 1), so moves through one receiver run one at a time and every instance that arrives belongs to
 * the move in progress; an instance that arrives with none in progress is refused.
 */
import { createServer, type Server as NetServer, type Socket } from "node:net";
import type { Logger } from "winston";
import { RawDataset, Scp, constants, responses, type DimseDataset } from "./dimse.js";
import type { Received } from "./dimse-client.js";
import { acceptWith } from "./dimse-link.js";

const STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1.";
const { PresentationContextResult: PCR, RejectResult, RejectSource, RejectReason, Status } = constants;

export class MoveReceiver {
  private server: NetServer | undefined;
  private readonly sockets = new Set<Socket>();
  private chain: Promise<unknown> = Promise.resolve();
  current: ((r: Received) => Promise<void>) | undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly aet: string,
    readonly logger: Logger,
  ) {
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      // The peer is the PACS we asked to move: the framing caps and timers apply all the same.
      acceptWith(socket, {
        artimMs: 30_000,
        idleMs: 60_000,
        maxMs: 0,
        log: (message, fields) => logger.warn(message, fields),
      });
      new ReceiverScp(socket, this);
    });
    this.server = server;
    server.on("error", (e) => logger.error("C-MOVE receiver failed", { port, error: String(e) }));
    // exclusive: in a worker of a group this process binds the port, not the cluster primary.
    server.listen({ port, host, exclusive: true }, () =>
      logger.info("C-MOVE receiver started", { address: host, port, aet }),
    );
  }

  /** Runs `fn` with `onInstance` receiving this receiver's instances; one move at a time. */
  exclusive<T>(onInstance: (r: Received) => Promise<void>, fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(async () => {
      this.current = onInstance;
      try {
        return await fn();
      } finally {
        this.current = undefined;
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

class ReceiverScp extends Scp {
  constructor(
    socket: Socket,
    private readonly receiver: MoveReceiver,
  ) {
    super(socket, { associationTimeout: 60_000, pduTimeout: 60_000 });
  }

  override associationRequested(association: InstanceType<typeof import("dcmjs-dimse").association.Association>): void {
    if (association.getCalledAeTitle().trim() !== this.receiver.aet) {
      this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized);
      return;
    }
    for (const c of association.getPresentationContexts()) {
      const ctx = association.getPresentationContext(c.id);
      if (ctx.getAbstractSyntaxUid().startsWith(STORAGE_ROOT))
        ctx.setResult(PCR.Accept, ctx.getTransferSyntaxUids()[0]);
      else ctx.setResult(PCR.RejectAbstractSyntaxNotSupported);
    }
    this.sendAssociationAccept();
  }

  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }

  override cStoreRequest(
    request: {
      getDataset(): DimseDataset | undefined;
      getAffectedSopClassUid(): string;
      getAffectedSopInstanceUid(): string;
    },
    callback: (r: InstanceType<typeof responses.CStoreResponse>) => void,
  ): void {
    const rsp = responses.CStoreResponse.fromRequest(request as never);
    const deliver = this.receiver.current;
    const ds = request.getDataset();
    if (!deliver || !ds) {
      rsp.setStatus(0xc000); // nobody asked for it
      callback(rsp);
      return;
    }
    deliver({
      dataset: ds instanceof RawDataset ? ds : new RawDataset(ds.getDenaturalizedDataset(), ds.getTransferSyntaxUid()),
      sopClass: request.getAffectedSopClassUid(),
      sopInstance: request.getAffectedSopInstanceUid(),
      transferSyntax: ds.getTransferSyntaxUid(),
    }).then(
      () => {
        rsp.setStatus(Status.Success);
        callback(rsp);
      },
      (e: unknown) => {
        this.receiver.logger.warn("C-MOVE instance not delivered", { error: String(e) });
        rsp.setStatus(0xa700);
        callback(rsp);
      },
    );
  }
}
