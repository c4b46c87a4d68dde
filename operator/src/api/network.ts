/**
 * HarmonyNetwork (cluster-scoped): a Group of Orgs (= namespaces) that share a domain, a CA, a
 * directory of endpoint URIs and policies, and may peer with networks in other clusters.
 *
 * Cluster-scoped because membership lists namespaces: a namespaced object could otherwise enrol
 * other tenants' namespaces, and a network spans them by definition. Policies are a list on the
 * network rather than a kind of their own: "first match wins" needs one total order, which one
 * list in one object gives atomically (separate objects would need a priority field and would be
 * read mid-edit). Same schema conventions as v1alpha1.ts (structural subset only).
 */
import { Type, type Static } from "@sinclair/typebox";
import {
  CommonStatus,
  Enum,
  Int,
  List,
  NAME,
  Obj,
  Str,
  StringMap,
  SUBDOMAIN,
  type KindInfo,
  type Condition,
} from "./v1alpha1.js";

const URI_PATTERN = "^harmony://[a-z0-9.-]+/[a-z0-9-]+/[a-z0-9.-]+$";
/** An org in a policy: `org-a` (ours) or `hospital-b.example/radiology` (a peer domain's). */
const ORG_REF = "^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const Names = (description: string) => List(Str("Name.", { pattern: NAME, maxLength: 63 }), description);

export const NetworkOperation = Obj(
  {
    protocol: Enum(["http", "fhir", "dicomweb", "dicom"], "Protocol the operation is spoken in."),
    methods: Type.Optional(List(Str("HTTP method.", { pattern: "^[A-Z]+$" }), "HTTP methods (any when empty).")),
    paths: Type.Optional(List(Str("Path, `*` as a trailing wildcard.", { pattern: "^/" }), "HTTP paths.")),
    interactions: Type.Optional(
      List(
        Enum(
          [
            "read",
            "vread",
            "update",
            "patch",
            "delete",
            "history-instance",
            "history-type",
            "history-system",
            "create",
            "search-type",
            "search-system",
            "capabilities",
            "batch",
            "transaction",
            "operation",
          ],
          "FHIR interaction.",
        ),
        "FHIR interactions (fhir only; any when empty).",
      ),
    ),
    resourceTypes: Type.Optional(
      List(Str("FHIR resource type.", { pattern: "^[A-Z][A-Za-z]+$" }), "FHIR resource types (fhir only)."),
    ),
    commands: Type.Optional(
      List(Enum(["C-ECHO", "C-FIND", "C-MOVE", "C-GET", "C-STORE"], "DIMSE command."), "DIMSE commands (dicom only)."),
    ),
  },
  "One protocol operation a rule matches; omitted fields match anything.",
);

export const NetworkPolicy = Obj(
  {
    name: Str("Rule name; a denial names it.", { pattern: NAME, maxLength: 63 }),
    action: Enum(["allow", "deny"], "What a match does."),
    source: Type.Optional(
      Obj(
        {
          orgs: Type.Optional(
            List(
              Str("Org: a bare name in the network's domain, `<domain>/<org>` in a federated peer's domain.", {
                pattern: ORG_REF,
                maxLength: 317,
              }),
              "Source orgs (verified from the caller's certificate).",
            ),
          ),
          endpoints: Type.Optional(List(Str("Endpoint URI.", { pattern: URI_PATTERN }), "Source endpoint URIs.")),
          labels: Type.Optional(StringMap("Labels the source must carry.")),
        },
        "Who calls (any when omitted).",
      ),
    ),
    destination: Type.Optional(
      Obj(
        {
          endpoints: Type.Optional(List(Str("Endpoint URI.", { pattern: URI_PATTERN }), "Destination endpoint URIs.")),
        },
        "What is called (any when omitted).",
      ),
    ),
    operations: Type.Optional(List(NetworkOperation, "Operations the rule covers (any when omitted).")),
  },
  "One rule. Rules are evaluated in order at the destination gateway; the first match wins; no match: same org or a shared group allows, anything else is denied.",
);

export const NetworkPeer = Obj(
  {
    name: Str("Peer name (status and logs).", { pattern: NAME, maxLength: 63 }),
    tokenSecretRef: Obj(
      { name: Str("Secret name.", { pattern: SUBDOMAIN, maxLength: 253 }) },
      "The peering token: a Secret in the operator's namespace with keys `url` (the peer gateway's export URL) and `fingerprint` (sha256 of the peer network CA's DER, hex).",
    ),
    maxValiditySeconds: Type.Optional(
      Int(
        "Longest an import of this peer is trusted after the peer signed it, whatever the export's own expiry says. An import not refreshed by then (the peer's export expired, or this cap passed) is dropped: its entries leave the directory and its CA the trust bundle.",
        { minimum: 60, default: 86400, maximum: 2592000 },
      ),
    ),
  },
  "A network in another cluster whose exported endpoints are imported.",
);

export const HarmonyNetworkSpec = Obj(
  {
    domain: Str("Domain of the network's URIs and SPIFFE identities (lower-case DNS name).", {
      pattern: SUBDOMAIN,
      maxLength: 253,
    }),
    listener: Type.Optional(
      Str(
        "Name of the gateway listener (spec.networks[].name) that carries inter-gateway traffic. Member orgs' gateways with a listener of this name join the network.",
        { pattern: NAME, maxLength: 63, default: "harmony" },
      ),
    ),
    members: Obj(
      {
        orgs: Type.Optional(Names("Member orgs (namespaces).")),
        namespaceSelector: Type.Optional(
          Obj(
            { matchLabels: Type.Optional(StringMap("Labels a namespace must carry.")) },
            "Namespaces whose labels match are member orgs too (cluster-wide operators only).",
          ),
        ),
      },
      "The orgs in this network (a Group).",
    ),
    export: Type.Optional(
      Obj(
        {
          endpoints: Type.Optional(
            List(
              Obj(
                {
                  org: Str("Org.", { pattern: NAME, maxLength: 63 }),
                  name: Type.Optional(Str("Endpoint name (all of the org's when omitted).", { maxLength: 253 })),
                },
                "Endpoints to export.",
              ),
              "Endpoints peer clusters may import (none when empty).",
            ),
          ),
          validitySeconds: Type.Optional(
            Int(
              "Lifetime of the signed export (re-signed every half of it). Peers drop an import they could not refresh within it, so it bounds how long they trust an org this network no longer exports.",
              { minimum: 60, default: 3600, maximum: 2592000 },
            ),
          ),
        },
        "What peer clusters see: a JWS signed with the network CA's key, served by member gateways.",
      ),
    ),
    peers: Type.Optional(
      List(NetworkPeer, "Peer clusters to import from.", {
        maxItems: 32,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
      }),
    ),
    syncIntervalSeconds: Type.Optional(
      Int("How often peers' exports are fetched again.", { minimum: 1, default: 30, maximum: 86400 }),
    ),
    ca: Type.Optional(
      Obj(
        {
          mode: Type.Optional(
            Enum(
              ["Operator", "CertManager"],
              "Operator: a CA the operator creates and keeps in a Secret of its namespace. CertManager: each member gateway's workload certificate is a cert-manager Certificate from certManager.issuerRef, and the trust bundle's local CA is that issuer's CA (ca.crt).",
              { default: "Operator" },
            ),
          ),
          certManager: Type.Optional(
            Obj(
              {
                issuerRef: Obj(
                  {
                    name: Str("Issuer or ClusterIssuer name.", { pattern: SUBDOMAIN, maxLength: 253 }),
                    kind: Enum(
                      ["Issuer", "ClusterIssuer"],
                      "Issuer: one of that name in every member org's namespace (a Certificate uses an Issuer of its own namespace). ClusterIssuer: one for the cluster.",
                    ),
                    group: Type.Optional(
                      Str("API group of the issuer (cert-manager.io, or an external issuer's).", {
                        pattern: SUBDOMAIN,
                        maxLength: 253,
                        default: "cert-manager.io",
                      }),
                    ),
                  },
                  "The issuer that signs the gateways' workload certificates. Its CA must be in the Secrets it fills (ca.crt), as cert-manager's CA, Vault and self-signed issuers do: that CA becomes the network's local trust anchor.",
                ),
              },
              "cert-manager settings (mode CertManager). cert-manager itself must be installed in the cluster.",
            ),
          ),
          caValidityDays: Type.Optional(Int("CA lifetime.", { minimum: 1, default: 3650, maximum: 36500 })),
          leafValiditySeconds: Type.Optional(
            Int("Workload certificate lifetime; re-issued after two thirds of it.", {
              minimum: 60,
              default: 2592000,
              maximum: 31536000,
            }),
          ),
          rotation: Type.Optional(
            Str(
              "Any new value starts a CA rotation: new CA in the bundle, then new leaves, then the old CA leaves the bundle.",
              { maxLength: 63 },
            ),
          ),
          rotationPhaseSeconds: Type.Optional(
            Int("Time between rotation steps (long enough for every pod to see the new bundle).", {
              minimum: 1,
              default: 300,
            }),
          ),
        },
        "The network's certificate authority.",
        {
          "x-kubernetes-validations": [
            {
              rule: "!has(self.mode) || self.mode != 'CertManager' || has(self.certManager)",
              message: "mode CertManager needs certManager.issuerRef {name, kind: Issuer|ClusterIssuer}",
            },
          ],
        },
      ),
    ),
    policies: Type.Optional(List(NetworkPolicy, "Rules in order; first match wins.", { maxItems: 10000 })),
  },
  "A network of orgs with a CA, a directory of endpoint URIs, policies and peers.",
);

export const PeerStatus = Obj(
  {
    name: Str("Peer name."),
    state: Enum(
      ["Pending", "Synced", "Error", "Expired"],
      "Pending: never fetched. Synced: the last fetch verified. Error: see lastError (the previous import stays until validUntil). Expired: no export verified before validUntil; the import was dropped.",
    ),
    validUntil: Type.Optional(
      Str("Until when the held import is trusted unless a fresher export verifies (when it lapsed, for Expired).", {
        format: "date-time",
      }),
    ),
    lastSyncTime: Type.Optional(Str("When an export last verified.", { format: "date-time" })),
    lastAttemptTime: Type.Optional(Str("When the export was last fetched.", { format: "date-time" })),
    lastError: Type.Optional(Str("Why the last fetch failed (the previous import stays in use until validUntil).")),
    entries: Type.Optional(Int("Entries imported.", { minimum: 0 })),
    refusedOrgs: Type.Optional(
      List(
        Str("Org (`<domain>/<org>` outside the network's domain)."),
        "Orgs the peer's export claims that this cluster or an earlier imported peer holds: its CA may not vouch for them.",
      ),
    ),
    message: Type.Optional(Str("Why orgs were refused (names the org and the peer that holds it).")),
  },
  "One peer's sync state.",
);

export const HarmonyNetworkStatus = Obj(
  {
    ...CommonStatus,
    members: Type.Optional(List(Str("Org."), "Member orgs.")),
    memberCount: Type.Optional(Int("Member orgs.", { minimum: 0 })),
    gateways: Type.Optional(Int("Member gateways (with the network's listener).", { minimum: 0 })),
    endpoints: Type.Optional(Int("Local endpoints in the directory.", { minimum: 0 })),
    peers: Type.Optional(List(PeerStatus, "Peers and their sync state.")),
    peerSummary: Type.Optional(Str("Synced peers / peers.")),
    caFingerprint: Type.Optional(Str("sha256 of the current CA certificate (DER, hex): what a peering token holds.")),
    operator: Type.Optional(
      Str(
        "The operator serving this network (its --network-namespace). Another operator leaves the network alone " +
          "while this is set; clear it (a status patch) to hand the network over.",
      ),
    ),
    skipped: Type.Optional(
      List(
        Obj(
          {
            kind: Enum(["Org", "HarmonyGateway"], "What was left out."),
            name: Str("The org, or the gateway as namespace/name."),
            reason: Str("NamespaceNotWatched or NoNetworkAddress."),
            message: Str("Why, and what to do."),
          },
          "A member left out.",
        ),
        "Members the operator left out, and why.",
      ),
    ),
  },
  "Observed state.",
);

export type HarmonyNetworkSpec = Static<typeof HarmonyNetworkSpec>;
export type NetworkPolicy = Static<typeof NetworkPolicy>;
export type PeerStatus = Static<typeof PeerStatus>;
export interface HarmonyNetwork {
  apiVersion: "harmony.runbeam.io/v1alpha1";
  kind: "HarmonyNetwork";
  metadata: {
    name?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: HarmonyNetworkSpec;
  status?: Static<typeof HarmonyNetworkStatus> & { conditions?: Condition[] };
}

export const NETWORK_KIND: KindInfo = {
  kind: "HarmonyNetwork",
  plural: "harmonynetworks",
  singular: "harmonynetwork",
  shortNames: ["hnet"],
  scope: "Cluster",
  spec: HarmonyNetworkSpec,
  status: HarmonyNetworkStatus,
  description: "A network of orgs (namespaces): URIs, a CA, a directory, policies and peer clusters.",
  columns: [
    { name: "Domain", type: "string", jsonPath: ".spec.domain", description: "URI domain." },
    { name: "Members", type: "integer", jsonPath: ".status.memberCount", description: "Member orgs." },
    { name: "Endpoints", type: "integer", jsonPath: ".status.endpoints", description: "Local endpoints." },
    { name: "Peers", type: "string", jsonPath: ".status.peerSummary", description: "Synced peers / peers." },
  ],
};
