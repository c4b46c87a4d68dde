/**
 * Which transfer syntax the gateway accepts in each storage presentation context a C-GET SCU
 * proposes (the SCU takes the SCP role for them, PS3.4 §C.4.3.1; the gateway, as C-GET SCP, sends
 * on them). PS3.8 §9.3.2.2 lets the acceptor pick one syntax per context; what the gateway will
 * send is not known yet, and it sends stored instances as they are, except that it transcodes
 * between the uncompressed syntaxes losslessly. So one uncompressed syntax accepted for a SOP
 * class carries every uncompressed instance, while a compressed one carries only its own kind.
 * Per SOP class, contexts proposing a single syntax have no choice; each other context then takes
 * the first syntax, in the SCU's order, that carries something no context of that class carries
 * yet: an SCU proposing [Explicit LE, JPEG] and [Implicit LE] gets JPEG in the first, so both
 * kinds of instance can go. When every proposed syntax is carried already, or when it is a real
 * trade-off within one lone context, the SCU's first choice wins (its order is its preference).
 */
import { isUncompressed } from "./transfer-syntax.js";

interface ProposedContext {
  id: number;
  abstractSyntax: string;
  syntaxes: string[];
}

interface ContextView {
  getPresentationContextId(): number;
  getAbstractSyntaxUid(): string;
  getTransferSyntaxUids(): string[];
}
interface AssociationView {
  getPresentationContexts(): { id: number }[];
  getPresentationContext(id: number): ContextView;
}

/** What an accepted syntax carries: every uncompressed instance, or only its own syntax. */
const carries = (ts: string): string => (isUncompressed(ts) ? "uncompressed" : ts);

/** The syntax to accept in each storage context (abstract syntax under `storageRoot`), by context ID. */
export function storageSyntaxes(association: AssociationView, storageRoot: string): Map<number, string> {
  const contexts: ProposedContext[] = association
    .getPresentationContexts()
    .map(({ id }) => association.getPresentationContext(id))
    .filter((c) => c.getAbstractSyntaxUid().startsWith(storageRoot) && c.getTransferSyntaxUids().length > 0)
    .map((c) => ({
      id: c.getPresentationContextId(),
      abstractSyntax: c.getAbstractSyntaxUid(),
      syntaxes: c.getTransferSyntaxUids(),
    }));
  return choose(contexts);
}

function choose(contexts: ProposedContext[]): Map<number, string> {
  const chosen = new Map<number, string>();
  const carried = new Map<string, Set<string>>(); // per SOP class
  const carriedBy = (uid: string) => carried.get(uid) ?? carried.set(uid, new Set()).get(uid)!;
  const take = (c: ProposedContext, ts: string) => {
    chosen.set(c.id, ts);
    carriedBy(c.abstractSyntax).add(carries(ts));
  };
  for (const c of contexts) if (c.syntaxes.length === 1) take(c, c.syntaxes[0]!);
  for (const c of contexts) {
    if (c.syntaxes.length < 2) continue;
    const have = carriedBy(c.abstractSyntax);
    take(c, c.syntaxes.find((ts) => !have.has(carries(ts))) ?? c.syntaxes[0]!);
  }
  return chosen;
}
