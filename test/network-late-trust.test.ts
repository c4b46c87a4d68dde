/**
 * The two-cluster race behind network-e2e's "B's gateway never trusts A's certificate": A's first
 * call reached B before B's trust bundle held A's CA (B's operator imports A, then writes the
 * bundle, then the kubelet's copy lands: a window of a second or more), and was refused. The
 * refusal came from the TLS verdict of the connection (`socket.authorized`), which is fixed at its
 * handshake, and the caller kept that connection (A's upstream pool; any keep-alive client): every
 * later request on it was refused with the same verdict, long after B had loaded A's CA. A client
 * that polls faster than the keep-alive timeout is never served.
 *
 * Here B starts without A's CA, A's gateway is refused, A's CA lands in B's bundle, and A's very
 * next call must be served (no polling: on the old code it is refused on the connection A kept).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { http, startDataplane, startUpstream, stopAll, type Dataplane } from "../dataplane/test/helpers.js";
import { createCa, issueLeaf, spiffe } from "./network-pki.js";
import { DOMAIN, networkFiles, type NetworkFiles } from "./network-fixture.js";

const stops: (() => unknown)[] = [];
after(() => stopAll(stops));

/** B serving FHIR, A calling it; A's identity from a CA of its own, which B does not trust yet. */
async function pair(): Promise<{ net: NetworkFiles; a: Dataplane; b: Dataplane; caA: string }> {
  const net = await networkFiles();
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json" }).end('{"resourceType":"CapabilityStatement"}');
  });
  stops.push(() => upstream.close());
  const caA = createCa("cluster A network CA");
  net.writeLeaf(net.a, issueLeaf(caA, [spiffe(DOMAIN, "org-a", "gw-a")]));
  writeFileSync(join(net.b.dir, "harmony.toml"), net.configB(`${upstream.url}/fhir`));
  writeFileSync(join(net.a.dir, "harmony.toml"), net.configA());
  const b = await startDataplane(join(net.b.dir, "harmony.toml"), { HARMONY_POLL_MS: "200" });
  stops.push(() => b.stop());
  const a = await startDataplane(join(net.a.dir, "harmony.toml"), { HARMONY_POLL_MS: "200" });
  stops.push(() => a.stop());
  return { net, a, b, caA: caA.certPem };
}

/** B's import of A lands: A's CA joins B's bundle, and B has reloaded (its next file reload). */
async function trustA(p: { net: NetworkFiles; b: Dataplane; caA: string }): Promise<void> {
  const reloads = p.b.logs.filter((l) => l.message === "config loaded" && l.trigger === "file").length;
  p.net.writeBundle(p.net.b, [p.net.ca.certPem, p.caA]);
  let seen = 0;
  await p.b.waitForLog((l) => l.message === "config loaded" && l.trigger === "file" && ++seen > reloads, 60_000);
}

test("A's calls through its gateway are served once B trusts A's CA, though the first was refused", async () => {
  const p = await pair();
  const viaA = () => http(`http://127.0.0.1:${p.a.ports.default}/b/fhir/metadata`);
  const refused = await viaA();
  assert.equal(refused.status, 401, refused.text);
  assert.match(refused.text, /not trusted/);
  await trustA(p);
  const served = await viaA();
  assert.equal(served.status, 200, served.text);
  assert.match(served.text, /CapabilityStatement/);
});
