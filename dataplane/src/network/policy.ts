/**
 * Network policy evaluation at the destination gateway (contract: rules in order, first match
 * wins; no match → allow when source and destination share an org or a group, else deny).
 *
 * Rules are compiled once per directory into an index by destination endpoint, so a request
 * looks at the rules naming its destination plus the rules naming none, not at every rule: with
 * 10,000 rules each naming one endpoint a request checks one or two (bench/network-policy).
 */
import { sameOrgOrGroup, type Directory, type OperationDoc, type PolicyDoc } from "./directory.js";
import { orgKey, type Identity } from "./identity.js";
import type { Operation } from "./operations.js";

export interface Decision {
  allow: boolean;
  /** The rule that decided, or "default-allow" / "default-deny". */
  rule: string;
}

interface CompiledRule {
  index: number;
  name: string;
  allow: boolean;
  orgs: Set<string> | undefined;
  sourceEndpoints: Set<string> | undefined;
  labels: [string, string][] | undefined;
  operations: ((op: Operation) => boolean)[] | undefined;
}

export interface CompiledPolicy {
  byDestination: Map<string, CompiledRule[]>;
  /** Rules without a destination: they apply to every endpoint. */
  anyDestination: CompiledRule[];
}

function glob(pattern: string): RegExp {
  const body = pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${body.join(".*")}$`);
}

function compileOperation(o: OperationDoc): (op: Operation) => boolean {
  switch (o.protocol) {
    case "http": {
      // An HTTP rule applies to everything carried over HTTP (http, fhir and dicomweb endpoints).
      const methods = o.methods ? new Set(o.methods.map((m) => m.toUpperCase())) : undefined;
      const paths = o.paths?.map(glob);
      return (op) =>
        op.method !== undefined &&
        (!methods || methods.has(op.method)) &&
        (!paths || paths.some((p) => p.test(op.path ?? "")));
    }
    case "fhir": {
      const interactions = o.interactions ? new Set(o.interactions) : undefined;
      // A POST to the base is "transaction" (the Bundle type is not read): "batch" names it too.
      if (interactions?.has("batch")) interactions.add("transaction");
      const types = o.resource_types ? new Set(o.resource_types) : undefined;
      return (op) =>
        op.interaction !== undefined &&
        (!interactions || interactions.has(op.interaction)) &&
        (!types || (op.resourceType !== undefined && types.has(op.resourceType)));
    }
    case "dicom": {
      const commands = o.commands ? new Set<string>(o.commands) : undefined;
      return (op) => op.command !== undefined && (!commands || commands.has(op.command));
    }
  }
}

export function compilePolicy(policies: PolicyDoc[]): CompiledPolicy {
  const byDestination = new Map<string, CompiledRule[]>();
  const anyDestination: CompiledRule[] = [];
  policies.forEach((p, index) => {
    const rule: CompiledRule = {
      index,
      name: p.name,
      allow: p.action === "allow",
      orgs: p.source?.orgs ? new Set(p.source.orgs) : undefined,
      sourceEndpoints: p.source?.endpoints ? new Set(p.source.endpoints) : undefined,
      labels: p.source?.labels ? Object.entries(p.source.labels) : undefined,
      operations: p.operations?.map(compileOperation),
    };
    const dests = p.destination?.endpoints;
    if (!dests) {
      anyDestination.push(rule);
      return;
    }
    for (const d of new Set(dests)) {
      const list = byDestination.get(d) ?? [];
      list.push(rule);
      byDestination.set(d, list);
    }
  });
  return { byDestination, anyDestination };
}

/** `org`: the peer's org as policies name it (identity.ts orgKey), computed once per request. */
function sourceMatches(r: CompiledRule, peer: Identity, org: string, d: Directory): boolean {
  // An org of another trust domain is named `<domain>/<org>` (a bare name is one of ours).
  if (r.orgs && !r.orgs.has(org)) return false;
  if (!r.sourceEndpoints && !r.labels) return true;
  // A gateway identity stands for the endpoints it serves: the source matches through any of them.
  const served = d.byIdentity.get(peer.uri) ?? [];
  return served.some(
    (e) =>
      (!r.sourceEndpoints || r.sourceEndpoints.has(e.uri)) &&
      (!r.labels || r.labels.every(([k, v]) => e.labels?.[k] === v)),
  );
}

function ruleMatches(r: CompiledRule, peer: Identity, org: string, op: Operation, d: Directory): boolean {
  return sourceMatches(r, peer, org, d) && (!r.operations || r.operations.some((m) => m(op)));
}

/**
 * Decides whether `peer` may do `op` on the endpoint `destination` (of org `destinationOrg`).
 * The two candidate lists are each in rule order; walking them merged keeps "first match wins".
 */
export function evaluate(
  policy: CompiledPolicy,
  d: Directory,
  peer: Identity,
  destination: string,
  destinationOrg: string,
  op: Operation,
): Decision {
  const org = orgKey(peer, d.doc.domain);
  const a = policy.byDestination.get(destination) ?? [];
  const b = policy.anyDestination;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const r = j >= b.length || (i < a.length && a[i]!.index < b[j]!.index) ? a[i++]! : b[j++]!;
    if (ruleMatches(r, peer, org, op, d)) return { allow: r.allow, rule: r.name };
  }
  const allow = sameOrgOrGroup(d, org, destinationOrg);
  return { allow, rule: allow ? "default-allow" : "default-deny" };
}
