/**
 * The pure checks behind per-CA trust scope (dataplane/src/network/{chain,trust,identity}.ts), on
 * generated certificates: path building through intermediates (CA:true, pathLenConstraint, depth,
 * loops, a foreign root), the scope of the ROOT a path ends at, trust domains and org names across
 * domains. The same checks over real sockets: test/hostile/{intermediate-ca,trust-domains}.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { basicConstraints, chainRoots, MAX_INTERMEDIATES } from "../dataplane/src/network/chain.js";
import { parseTrustBundle, scopeRefusal, trustedDomains, type TrustAnchor } from "../dataplane/src/network/trust.js";
import { identityOf, orgKey } from "../dataplane/src/network/identity.js";
import { createCa, createIntermediate, createLoop, intermediates, issueLeaf, spiffe } from "./network-pki.js";

const D = "hospital-a.example";
const x = (pem: string) => new X509Certificate(pem);
const pemsOf = (chainPem: string) =>
  [...chainPem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => x(m[0]));

const root = createCa("root A");
const peerRoot = createCa("root P");
const other = createCa("root not in the bundle");
const bundle = parseTrustBundle(
  `Harmony-Orgs: org-a\n${root.certPem}Harmony-Orgs: hospital-p.example/org-p\n${peerRoot.certPem}`,
  D,
);
const [anchorA, anchorP] = bundle;
/** The refusal chainRoots gives, or a marker when it found roots. */
const why = (...args: Parameters<typeof chainRoots<TrustAnchor>>) => {
  const r = chainRoots(...args);
  return typeof r === "string" ? r : `roots: ${r.length}`;
};

test("basicConstraints: CA flag and pathLenConstraint read from the DER", () => {
  assert.deepEqual(basicConstraints(x(root.certPem).raw), { ca: true, pathLen: undefined });
  assert.deepEqual(basicConstraints(x(createIntermediate(root, "i", { pathLen: 2 }).certPem).raw), {
    ca: true,
    pathLen: 2,
  });
  assert.deepEqual(basicConstraints(x(issueLeaf(root, [spiffe(D, "org-a", "g")]).certPem).raw), {
    ca: false,
    pathLen: undefined,
  });
  assert.deepEqual(basicConstraints(Buffer.from([0x30, 0x82, 0xff])), { ca: false, pathLen: undefined });
});

test("chainRoots: direct, through one and through several intermediates reaches the root", () => {
  const direct = issueLeaf(root, [spiffe(D, "org-a", "g")]);
  assert.deepEqual(chainRoots(x(direct.certPem), [], bundle), [anchorA]);
  for (const n of [1, 3, MAX_INTERMEDIATES]) {
    const { issuer, chainPem } = intermediates(peerRoot, n);
    const leaf = issueLeaf(issuer, [spiffe("hospital-p.example", "org-p", "g")]);
    // Presented in any order, with the root itself among them: the same single root.
    assert.deepEqual(chainRoots(x(leaf.certPem), [...pemsOf(chainPem)].reverse(), bundle), [anchorP], `n=${n}`);
  }
});

test("chainRoots: refuses non-CA issuers, pathLen violations, foreign roots, long chains and loops", () => {
  const leafOf = (ca: { certPem: string; keyPem: string }) => x(issueLeaf(ca, [spiffe(D, "org-a", "g")]).certPem);
  // A leaf used as a CA: the chain verifies by signature but CA:false.
  const notCa = createIntermediate(root, "not a CA", { ca: false });
  assert.match(why(leafOf(notCa), [x(notCa.certPem)], bundle), /not a CA/);
  // pathLen 0 on the intermediate, a second intermediate below it.
  const i0 = createIntermediate(root, "i0", { pathLen: 0 });
  const i1 = createIntermediate(i0, "i1");
  assert.match(why(leafOf(i1), [x(i1.certPem), x(i0.certPem)], bundle), /allows 0 intermediate/);
  // The same with pathLen 1 is fine.
  const j0 = createIntermediate(root, "j0", { pathLen: 1 });
  const j1 = createIntermediate(j0, "j1");
  assert.deepEqual(chainRoots(leafOf(j1), [x(j1.certPem), x(j0.certPem)], bundle), [anchorA]);
  // A root whose own pathLen is 0 may not have an intermediate below it.
  const tight = createCa("tight root", { pathLen: 0 });
  const tightBundle = parseTrustBundle(`Harmony-Orgs: org-a\n${tight.certPem}`, D);
  const t1 = createIntermediate(tight, "t1");
  assert.match(why(leafOf(t1), [x(t1.certPem)], tightBundle), /its root allows 0/);
  assert.deepEqual(chainRoots(leafOf(tight), [], tightBundle), [tightBundle[0]]);
  // An intermediate of a root not in the bundle, even one with our root's name.
  const foreign = createIntermediate(other, "intermediate");
  assert.match(why(leafOf(foreign), [x(foreign.certPem)], bundle), /does not chain/);
  // Longer than MAX_INTERMEDIATES.
  const long = intermediates(root, MAX_INTERMEDIATES + 2);
  assert.match(why(leafOf(long.issuer), pemsOf(long.chainPem), bundle), /more than 4 intermediate/);
  // A loop (X issued by Y, Y by X) ends, refused.
  const [lx, ly] = createLoop();
  assert.match(why(leafOf(lx), [x(lx.certPem), x(ly.certPem)], bundle), /does not chain/);
});

test("scopeRefusal: the ROOT's scope applies; an intermediate cannot widen it", () => {
  const { issuer, chainPem } = intermediates(peerRoot, 2);
  const chain = pemsOf(chainPem);
  const as = (domain: string, org: string) => {
    const leaf = x(issueLeaf(issuer, [spiffe(domain, org, "g")]).certPem);
    return scopeRefusal(bundle, leaf, chain, { domain, org }, D);
  };
  assert.equal(as("hospital-p.example", "org-p"), undefined);
  assert.match(String(as(D, "org-a")), /may not vouch for org "org-a": it vouches only for hospital-p\.example\/org-p/);
  assert.match(String(as("hospital-p.example", "org-q")), /may not vouch for org "hospital-p\.example\/org-q"/);
  // The same org name in our domain is another org.
  assert.match(String(as(D, "org-p")), /may not vouch for org "org-p"/);
  // Our root's intermediate issuing for the peer's org: our root may not vouch for it either.
  const ours = intermediates(root, 1);
  const leaf = x(issueLeaf(ours.issuer, [spiffe("hospital-p.example", "org-p", "g")]).certPem);
  assert.match(
    String(scopeRefusal(bundle, leaf, pemsOf(ours.chainPem), { domain: "hospital-p.example", org: "org-p" }, D)),
    /vouches only for org-a/,
  );
});

test("trust domains: ours plus those a CA is bound to; identities read only there, one of them", () => {
  assert.deepEqual([...trustedDomains(bundle, D)].sort(), [D, "hospital-p.example"]);
  const domains = trustedDomains(bundle, D);
  const p = spiffe("hospital-p.example", "org-p", "g");
  assert.equal(identityOf(`URI:${p}`, domains)?.domain, "hospital-p.example");
  assert.equal(identityOf(`URI:${spiffe("hospital-z.example", "org-z", "g")}`, domains), undefined);
  assert.equal(identityOf(`URI:${p}, URI:${spiffe(D, "org-a", "g")}`, domains), undefined, "two domains: ambiguous");
  assert.equal(orgKey({ domain: D, org: "org-a" }, D), "org-a");
  assert.equal(orgKey({ domain: "hospital-p.example", org: "org-p" }, D), "hospital-p.example/org-p");
  // An unscoped bundle trusts our domain only.
  assert.deepEqual([...trustedDomains(parseTrustBundle(root.certPem, D), D)], [D]);
});
