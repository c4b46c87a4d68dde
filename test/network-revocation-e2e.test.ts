/**
 * Revocation across clusters, end to end (test/network-federation.ts: two control planes and
 * operators, data planes on the files the operators rendered). Cluster B imports org-a from A's
 * signed export, and gw-b accepts gw-a's network identity. Then no gateway of A serves the export
 * any more (gw-a, A's only member gateway, stops): nothing tells B, so B must drop the import once
 * the last export it verified is past its validity, and gw-b must refuse gw-a's certificate.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { stopAll } from "../dataplane/test/helpers.js";
import type { Cluster } from "./network-env.js";
import { startFederation, type Federation } from "./network-federation.js";

const VALIDITY = 60;
let fed: Federation;
let A: Cluster;
let B: Cluster;
const stops: (() => unknown)[] = [];

type Peer = { name: string; state: string; lastError?: string; validUntil?: string };
const bPeer = async () =>
  (
    await B.get<{ status?: { peers?: Peer[] } }>("/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/hospitals")
  )?.status?.peers?.find((p) => p.name === "cluster-a");

/** A request to gw-b's network listener with gw-a's network certificate: the status and body. */
async function asGwA(): Promise<{ status: number; text: string }> {
  const [cert, key] = await Promise.all([
    A.secretKey("org-a", "gw-a-harmony-net", "hospitals.tls.crt"),
    A.secretKey("org-a", "gw-a-harmony-net", "hospitals.tls.key"),
  ]);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: fed.ports.b,
        path: "/no-such-endpoint",
        cert,
        key,
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

before(async () => {
  fed = await startFederation(stops, () => ({ a: [], b: [] }));
  ({ A, B } = fed);
  // A short validity (the CRD's minimum) keeps the test short; the default is an hour.
  await A.apply(fed.network("A", { export: { endpoints: [{ org: "org-a" }], validitySeconds: VALIDITY } }));
});

after(() => stopAll(stops));

test("B drops org-a once no gateway of A serves A's export past its validity, and gw-b refuses gw-a", async () => {
  // B holds an export signed with the short validity, and gw-b knows gw-a.
  // (An operator without validUntil, as before this behaviour, passes this wait: the test then
  // fails where the gap is, at the lapse below.)
  await fed.eventually("B imports A's short-lived export", async () => {
    const p = await bPeer();
    return p?.state === "Synced" && (!p.validUntil || Date.parse(p.validUntil) <= Date.now() + VALIDITY * 1000);
  });
  // Trusted (past the certificate check: 404 for the path, or 403 by policy), not 401.
  await fed.eventually("gw-b trusts gw-a's certificate", async () => (await asGwA()).status !== 401);

  // A's only member gateway stops: nothing serves A's export any more.
  await fed.gwA.stop();
  const gone = await fed.eventually(
    "B's import of A lapsed",
    async () => {
      const p = await bPeer();
      return p?.state === "Expired" && p;
    },
    VALIDITY * 1000 + 90_000,
  );
  assert.ok(Date.parse(gone.validUntil!) <= Date.now(), "dropped once past its validity, not before");
  assert.match(gone.lastError ?? "", /lapsed at .* its entries and CA are dropped/);
  const refused = await fed.eventually("gw-b refuses gw-a", async () => {
    const r = await asGwA();
    return r.status === 401 && r;
  });
  assert.match(refused.text, /not trusted/);
  const dir = JSON.parse((await B.secretKey("org-b", "gw-b-harmony-net", "hospitals.directory.json"))!) as {
    groups: { orgs: string[] }[];
  };
  assert.ok(!dir.groups.some((g) => g.orgs.includes("org-a")), JSON.stringify(dir.groups));
});
