/**
 * directory.json, as the operator writes it for each member gateway: the network's endpoints
 * (URI → gateway address, port, protocol, identity), its groups and its policies. Parsed and
 * checked here (schema, then cross-field rules); lookups other modules need are built once.
 */
import { Type, type Static } from "@sinclair/typebox";
import { checkOptions } from "../config/schema-check.js";

const Names = (description: string) => Type.Array(Type.String({ minLength: 1 }), { description });
const Protocol = Type.Union([
  Type.Literal("http"),
  Type.Literal("fhir"),
  Type.Literal("dicomweb"),
  Type.Literal("dicom"),
]);

const Entry = Type.Object(
  {
    uri: Type.String({ pattern: "^harmony://" }),
    org: Type.String({ minLength: 1 }),
    endpoint: Type.String({ minLength: 1 }),
    protocol: Protocol,
    address: Type.String({ minLength: 1 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    path_prefix: Type.Optional(Type.String({ pattern: "^/" })),
    ae_title: Type.Optional(Type.String({ minLength: 1, maxLength: 16 })),
    identity: Type.String({ pattern: "^spiffe://" }),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { additionalProperties: true },
);

export const HttpOperation = Type.Object({
  protocol: Type.Literal("http"),
  methods: Type.Optional(Names("HTTP methods (upper case).")),
  paths: Type.Optional(Names("Paths below the endpoint's path_prefix; `*` matches any run of characters.")),
});
export const FhirOperation = Type.Object({
  protocol: Type.Literal("fhir"),
  interactions: Type.Optional(Names("FHIR interactions (read, vread, search-type, create, ...).")),
  resource_types: Type.Optional(Names("FHIR resource types.")),
});
export const DicomOperation = Type.Object({
  protocol: Type.Literal("dicom"),
  commands: Type.Optional(
    Type.Array(Type.Union(["C-FIND", "C-STORE", "C-MOVE", "C-GET", "C-ECHO"].map((c) => Type.Literal(c))), {
      description: "DIMSE commands (DICOMweb: QIDO = C-FIND, WADO = C-GET, STOW = C-STORE).",
    }),
  ),
});
const Operation = Type.Union([HttpOperation, FhirOperation, DicomOperation]);

const Policy = Type.Object({
  name: Type.String({ minLength: 1 }),
  action: Type.Union([Type.Literal("allow"), Type.Literal("deny")]),
  source: Type.Optional(
    Type.Object({
      orgs: Type.Optional(Names("Calling orgs.")),
      endpoints: Type.Optional(Names("Endpoint URIs served by the calling gateway.")),
      labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    }),
  ),
  destination: Type.Optional(Type.Object({ endpoints: Type.Optional(Names("Destination endpoint URIs.")) })),
  operations: Type.Optional(Type.Array(Operation)),
});

export const DirectorySchema = Type.Object({
  version: Type.Literal(1),
  network: Type.String({ minLength: 1 }),
  domain: Type.String({ minLength: 1 }),
  groups: Type.Optional(
    Type.Array(Type.Object({ network: Type.Optional(Type.String()), orgs: Names("Member orgs.") })),
  ),
  entries: Type.Array(Entry),
  policies: Type.Optional(Type.Array(Policy)),
});

export type DirectoryDoc = Static<typeof DirectorySchema>;
export type DirectoryEntry = Static<typeof Entry>;
export type PolicyDoc = Static<typeof Policy>;
export type OperationDoc = Static<typeof Operation>;

export interface Directory {
  doc: DirectoryDoc;
  byUri: Map<string, DirectoryEntry>;
  /** Orgs that share a group with each org (itself included). */
  groupPeers: Map<string, Set<string>>;
  /**
   * Every org the directory knows (entries and groups), named as policies name them: bare in the
   * network's domain, `<domain>/<org>` in another (an entry's domain is its URI's).
   */
  orgs: Set<string>;
  /** Entries by the SPIFFE identity of the gateway serving them. */
  byIdentity: Map<string, DirectoryEntry[]>;
}

/** Parses directory.json; throws an Error whose message says what is wrong (the caller adds the path). */
export function parseDirectory(text: string, expect: { network: string; domain: string }): Directory {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${(e as Error).message}`);
  }
  const issues = checkOptions(DirectorySchema, raw);
  if (issues.length) {
    const first = issues.slice(0, 3).map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(first.join("; "));
  }
  const doc = raw as DirectoryDoc;
  if (doc.domain !== expect.domain)
    throw new Error(`domain is "${doc.domain}", but harmony_networks.${expect.network}.domain is "${expect.domain}"`);
  const byUri = new Map<string, DirectoryEntry>();
  const byIdentity = new Map<string, DirectoryEntry[]>();
  const orgs = new Set<string>();
  for (const e of doc.entries) {
    // A URI is a global name: two entries for one would make routing depend on file order.
    if (byUri.has(e.uri)) throw new Error(`entry ${e.uri} appears twice`);
    byUri.set(e.uri, e);
    orgs.add(entryOrg(e, doc.domain));
    const list = byIdentity.get(e.identity) ?? [];
    list.push(e);
    byIdentity.set(e.identity, list);
  }
  const groupPeers = new Map<string, Set<string>>();
  for (const g of doc.groups ?? []) {
    for (const o of g.orgs) {
      orgs.add(o);
      const set = groupPeers.get(o) ?? new Set([o]);
      for (const p of g.orgs) set.add(p);
      groupPeers.set(o, set);
    }
  }
  return { doc, byUri, groupPeers, orgs, byIdentity };
}

/** The org of an entry as policies name it: bare in `localDomain`, else `<domain>/<org>`. */
export function entryOrg(e: DirectoryEntry, localDomain: string): string {
  const domain = /^harmony:\/\/([^/]+)\//.exec(e.uri)?.[1];
  return domain === undefined || domain === localDomain ? e.org : `${domain}/${e.org}`;
}

/**
 * Same org, or both in one group: the default that applies when no policy matches. Orgs are
 * named as in policies (an org of another trust domain as `<domain>/<org>`).
 */
export function sameOrgOrGroup(d: Directory, a: string, b: string): boolean {
  return a === b || (d.groupPeers.get(a)?.has(b) ?? false);
}
