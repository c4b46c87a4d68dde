/**
 * spec.ca.mode CertManager, the pure parts (network/cert-manager.ts): the Certificate the operator
 * asks cert-manager for, and which of cert-manager's Secrets it takes as a gateway's leaf. The
 * whole loop, with the real cert-manager, is test/network-certmanager.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Secret } from "@kubernetes/client-node";
import type { HarmonyGateway } from "../src/api/v1alpha1.js";
import type { HarmonyNetwork } from "../src/api/network.js";
import { desiredCertificate, leafOf } from "../src/network/cert-manager.js";
import { createNetworkCa, issueLeaf, spiffeId } from "../src/network/pki.js";

const gw = {
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyGateway",
  metadata: { name: "gw-b", namespace: "org-b", uid: "u-1" },
  spec: { networks: [{ name: "harmony", port: 9443 }] },
} as unknown as HarmonyGateway;
const net = (ca: object) =>
  ({
    metadata: { name: "hospitals" },
    spec: { domain: "hospitals.example", members: { orgs: ["org-b"] }, ca },
  }) as unknown as HarmonyNetwork;
const ref = { mode: "CertManager", certManager: { issuerRef: { name: "hospitals-ca", kind: "ClusterIssuer" } } };

test("the Certificate: SPIFFE URI SAN only, renewal at two thirds, a new key every time, owned by the gateway", () => {
  const c = desiredCertificate(net({ ...ref, leafValiditySeconds: 86400 }), gw);
  assert.equal(c.metadata.name, "gw-b-harmony-hospitals");
  assert.equal(c.metadata.namespace, "org-b");
  assert.deepEqual(
    c.metadata.ownerReferences.map((o) => [o.kind, o.name, o.uid, o.controller]),
    [["HarmonyGateway", "gw-b", "u-1", true]],
  );
  assert.deepEqual(c.spec.uris, ["spiffe://hospitals.example/org/org-b/gateway/gw-b"]);
  assert.equal("commonName" in c.spec || "dnsNames" in c.spec, false);
  assert.equal(c.spec.duration, "86400s");
  assert.equal(c.spec.renewBefore, "28800s");
  assert.equal(c.spec.privateKey.rotationPolicy, "Always");
  assert.deepEqual(c.spec.issuerRef, { name: "hospitals-ca", kind: "ClusterIssuer", group: "cert-manager.io" });
  // cert-manager refuses less than an hour: the operator asks for an hour rather than be refused.
  assert.equal(desiredCertificate(net({ ...ref, leafValiditySeconds: 60 }), gw).spec.duration, "3600s");
});

test("a Secret is a leaf only with the gateway's URI SAN, its key, and a ca.crt that issued it", () => {
  const ca = createNetworkCa("hospitals", "hospitals.example", 1);
  const other = createNetworkCa("other", "other.example", 1);
  const uri = spiffeId("hospitals.example", "org-b", "gw-b");
  const leaf = issueLeaf(ca, uri, 3600);
  const secret = (data: Record<string, string>): V1Secret => ({
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  });
  const good = leafOf(
    secret({ "tls.crt": leaf.certPem, "tls.key": leaf.keyPem, "ca.crt": ca.caPem }),
    "s",
    uri,
    new Date(),
  );
  assert.equal(typeof good, "object");
  assert.equal(typeof good === "object" && good.cas.length, 1);
  const said = (r: ReturnType<typeof leafOf>) => (typeof r === "string" ? r : "taken as a leaf");
  const why = (d: Record<string, string>, u = uri, at = new Date()) => said(leafOf(secret(d), "s", u, at));
  assert.equal(leafOf(undefined, "s", uri, new Date()), "Secret s not written yet");
  assert.match(why({ "tls.crt": leaf.certPem, "tls.key": leaf.keyPem }), /no ca\.crt: the issuer must publish its CA/);
  assert.match(
    why(
      { "tls.crt": leaf.certPem, "tls.key": leaf.keyPem, "ca.crt": ca.caPem },
      spiffeId("hospitals.example", "org-a", "gw-b"),
    ),
    /does not name spiffe:\/\/hospitals\.example\/org\/org-a\/gateway\/gw-b/,
  );
  assert.match(
    why({ "tls.crt": leaf.certPem, "tls.key": other.caKeyPem, "ca.crt": ca.caPem }),
    /tls\.key does not match/,
  );
  assert.match(
    why({ "tls.crt": leaf.certPem, "tls.key": leaf.keyPem, "ca.crt": other.caPem }),
    /ca\.crt did not issue tls\.crt/,
  );
  const later = new Date(Date.now() + 2 * 3600_000);
  assert.match(why({ "tls.crt": leaf.certPem, "tls.key": leaf.keyPem, "ca.crt": ca.caPem }, uri, later), /has expired/);
});
