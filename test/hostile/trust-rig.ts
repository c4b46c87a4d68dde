/**
 * The trust attack rigs' set-up (federated-trust.test.ts, intermediate-ca.test.ts): around
 * startAttackPair, a FHIR origin; an impostor HTTPS server holding a certificate some peer CA
 * issued for gw-b's identity, which A's directory lists as org B's `fake` endpoint; B's PACS on
 * a DIMSE port; both directories (every org of the rig in one group) and trust bundles.
 */
import { writeFileSync } from "node:fs";
import { createServer } from "node:https";
import { once } from "node:events";
import { join } from "node:path";
import { freePort, startUpstream, type Dataplane } from "../../dataplane/test/helpers.js";
import type { Leaf } from "../network-pki.js";
import { DOMAIN, NETWORK, startAttackPair, type Gw, type NetworkFiles } from "../network-fixture.js";

export interface TrustRig {
  a: Dataplane;
  b: Dataplane;
  /** B's DIMSE port (PACS-B, harmony://…/org-b/pacs). */
  bDicom: number;
  /** Requests the impostor answered. */
  impostorHits(): number;
}

/** B's PACS (AE PACS-B) on its DIMSE port, as a directory lists it: harmony://…/org-b/pacs. */
export const pacsEntry = (net: NetworkFiles, port: number): Record<string, unknown> => ({
  ...net.entries[0]!,
  uri: `harmony://${DOMAIN}/org-b/pacs`,
  endpoint: "pacs",
  protocol: "dicom",
  port,
  path_prefix: undefined,
  ae_title: "PACS-B",
});

function directory(g: Gw, orgs: string[], entries: Record<string, unknown>[]): void {
  writeFileSync(
    join(g.dir, "directory.json"),
    JSON.stringify({
      version: 1,
      network: NETWORK,
      domain: DOMAIN,
      groups: [{ network: NETWORK, orgs }],
      entries,
      policies: [],
    }),
  );
}

export async function startTrustRig(
  net: NetworkFiles,
  o: { impostor: Leaf; orgs: string[]; bundle: string },
  stops: (() => unknown)[],
): Promise<TrustRig> {
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json" }).end('{"resourceType":"CapabilityStatement"}');
  });
  stops.push(() => upstream.close());
  let hits = 0;
  const impostor = createServer({ cert: o.impostor.certPem, key: o.impostor.keyPem }, (_req, res) => {
    hits++;
    res.end("impostor");
  });
  impostor.listen(0, "127.0.0.1");
  await once(impostor, "listening");
  stops.push(() => new Promise((r) => impostor.close(r)));
  const bDicom = await freePort();
  const entries = [...net.entries, pacsEntry(net, bDicom)];
  directory(net.b, o.orgs, entries);
  directory(net.a, o.orgs, [
    ...entries,
    {
      ...net.entries[0]!,
      uri: `harmony://${DOMAIN}/org-b/fake`,
      endpoint: "fake",
      port: (impostor.address() as { port: number }).port,
      path_prefix: "/fake",
    },
  ]);
  for (const g of [net.a, net.b]) writeFileSync(join(g.dir, "ca.crt"), o.bundle);
  const { a, b } = await startAttackPair(net, { origin: upstream.url, bDicom, fakeService: "fhir" }, stops);
  return { a, b, bDicom, impostorHits: () => hits };
}
