/**
 * What a C-STORE SCU proposes for a relayed instance (PS3.8 §9.3.3.2: propose only what can be
 * sent). dcmjs-dimse proposes Implicit and Explicit VR Little Endian for every C-STORE request's
 * SOP class, plus a context of the data set's own syntax when it is another one. A relayed
 * (RawDataset) instance is never decoded, so a compressed one cannot go in those: a peer that
 * accepted only them would take a context the instance cannot be sent in. For a relayed instance
 * this proposes instead a context of its own syntax alone (first, so it goes unchanged whenever
 * the peer takes it as it is) and, when it is uncompressed, one of every uncompressed syntax,
 * which dimse.ts transcodes to losslessly. Data sets built here (not relayed) keep the default.
 */
import { RawDataset, association, constants, requests } from "./dimse.js";
import { canTranscode, isUncompressed, sendableAs } from "./transfer-syntax.js";

type AnyAssociation = InstanceType<typeof association.Association>;
type AnyRequest = InstanceType<typeof requests.CStoreRequest>;
type AssociationProto = {
  addPresentationContextFromRequest(this: AnyAssociation, request: AnyRequest, syntaxes?: string | string[]): number;
};

const proto = association.Association.prototype as unknown as AssociationProto;
// eslint-disable-next-line @typescript-eslint/unbound-method -- called with .call(this) below
const fromRequest = proto.addPresentationContextFromRequest;

/** The ID of a context of `sopClass` proposing exactly `syntaxes`, added when there is none yet. */
function contextFor(a: AnyAssociation, sopClass: string, syntaxes: string[]): number {
  for (const { id } of a.getPresentationContexts() as { id: number }[]) {
    const c = a.getPresentationContext(id);
    const proposed = c.getTransferSyntaxUids();
    if (
      c.getAbstractSyntaxUid() === sopClass &&
      proposed.length === syntaxes.length &&
      proposed.every((t: string, i: number) => t === syntaxes[i])
    )
      return id;
  }
  const id = a.addPresentationContext(sopClass);
  for (const t of syntaxes) a.addTransferSyntaxToPresentationContext(id, t);
  return id;
}

proto.addPresentationContextFromRequest = function (this: AnyAssociation, request, syntaxes) {
  const ds = request instanceof requests.CStoreRequest ? request.getDataset() : undefined;
  if (!(ds instanceof RawDataset)) return fromRequest.call(this, request, syntaxes);
  const sopClass = request.getAffectedSopClassUid();
  const stored = ds.getTransferSyntaxUid();
  const own = contextFor(this, sopClass, [stored]);
  if (isUncompressed(stored)) contextFor(this, sopClass, sendableAs(stored));
  return own;
};

/**
 * The context a relayed instance goes on: one accepted in its own syntax, else (uncompressed) one
 * accepted in another uncompressed syntax, transcoded losslessly; else none, and the C-STORE fails
 * as "transfer syntax not supported" rather than going mis-encoded. dcmjs-dimse would fall back
 * to the last accepted context of the SOP class whatever its syntax (a JPEG one for an
 * uncompressed instance, say). Holds for the Client and for the SCP's C-GET sub-operations.
 */
type PickProto = { getAcceptedPresentationContextFromRequest(this: AnyAssociation, request: AnyRequest): unknown };
const pickProto = association.Association.prototype as unknown as PickProto;
// eslint-disable-next-line @typescript-eslint/unbound-method -- called with .call(this) below
const acceptedFor = pickProto.getAcceptedPresentationContextFromRequest;

pickProto.getAcceptedPresentationContextFromRequest = function (this: AnyAssociation, request) {
  const ds = request instanceof requests.CStoreRequest ? request.getDataset() : undefined;
  if (!(ds instanceof RawDataset)) return acceptedFor.call(this, request);
  const sopClass = request.getAffectedSopClassUid();
  const stored = ds.getTransferSyntaxUid();
  const accepted = (this.getPresentationContexts() as { id: number }[])
    .map(({ id }) => this.getPresentationContext(id))
    .filter(
      (c) => c.getAbstractSyntaxUid() === sopClass && c.getResult() === constants.PresentationContextResult.Accept,
    );
  return (
    accepted.find((c) => c.getAcceptedTransferSyntaxUid() === stored) ??
    accepted.find((c) => canTranscode(stored, c.getAcceptedTransferSyntaxUid() ?? ""))
  );
};
