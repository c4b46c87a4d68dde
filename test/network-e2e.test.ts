/**
 * HarmonyNetwork end to end, FHIR: two clusters federated into one network (test/network-federation.ts:
 * two control planes and operators, data planes on the files the operators rendered).
 *
 * An app in org-a calls harmony://hospitals.example/org-b/fhir (a HarmonyPipeline backend
 * `target`) through gw-a and reads B's FHIR server (Medplum); the peers' exports are fetched from
 * the real data planes' /.well-known path; a deny policy on B's network gives the next call a 403
 * naming the rule; removing it restores the call (both timed).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import TOML from "@iarna/toml";
import { http, stopAll } from "../dataplane/test/helpers.js";
import { cr, type Cluster } from "./network-env.js";
import { DOMAIN, startFederation, type Federation } from "./network-federation.js";
import { startFhirServer, type FhirPeer } from "./peers/fhir-server.js";

const B_FHIR = `harmony://${DOMAIN}/org-b/fhir`;

let fed: Federation;
let A: Cluster;
let B: Cluster;
let fhir: FhirPeer;
let patientId = "";
const stops: (() => unknown)[] = [];

const DENY_A = {
  name: "no-org-a-at-b-fhir",
  action: "deny",
  source: { orgs: ["org-a"] },
  destination: { endpoints: [B_FHIR] },
};

before(async () => {
  fhir = await startFhirServer();
  stops.push(() => fhir.close());
  const created = await http(`${fhir.base}/Patient`, {
    method: "POST",
    headers: { "content-type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Federated" }] }),
  });
  assert.equal(created.status, 201, created.text);
  patientId = (created.json() as { id: string }).id;

  fed = await startFederation(stops, () => ({
    a: [
      // The app-facing endpoint: only on the apps listener, so not in the network's directory.
      cr("HarmonyEndpoint", "org-a", "b-fhir", { service: "fhir", pathPrefix: "/b/fhir" }),
      cr("HarmonyPipeline", "org-a", "to-b", {
        gatewayRef: { name: "gw-a" },
        networks: ["apps"],
        endpoints: [{ name: "b-fhir" }],
        backends: [{ service: "fhir", target: B_FHIR }],
      }),
    ],
    b: [
      cr("HarmonyEndpoint", "org-b", "fhir", { service: "fhir", pathPrefix: "/org-b/fhir" }),
      cr("HarmonyPipeline", "org-b", "fhir-pl", {
        gatewayRef: { name: "gw-b" },
        networks: ["harmony"],
        endpoints: [{ name: "fhir" }],
        backends: [{ service: "fhir", url: fhir.base }],
      }),
    ],
  }));
  ({ A, B } = fed);
});

after(() => stopAll(stops));

const viaA = (path: string) => http(`http://127.0.0.1:${fed.ports.app}/b/fhir${path}`);

test("the rendered config points at the mounted network files (relative to the config directory)", async () => {
  const cm = await A.get<{ data: Record<string, string> }>("/api/v1/namespaces/org-a/configmaps/gw-a-harmony-config");
  const doc = TOML.parse(cm!.data["config.toml"]!) as { harmony_networks: Record<string, Record<string, string>> };
  assert.equal(doc.harmony_networks.hospitals!.cert_path, "../net/hospitals/tls.crt");
  assert.equal(doc.harmony_networks.hospitals!.directory_path, "../net/hospitals/directory.json");
});

test("each side imports the other's export from the other's real data plane", async () => {
  for (const [c, other] of [
    [A, "cluster-b"],
    [B, "cluster-a"],
  ] as const) {
    await fed.eventually(`${c.name} synced from ${other}`, async () => {
      const n = await c.get<{ status?: { peers?: { name: string; state: string; lastError?: string }[] } }>(
        "/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/hospitals",
      );
      return n?.status?.peers?.find((p) => p.name === other)?.state === "Synced";
    });
  }
});

test("an app in org A reads org B's FHIR server through harmony://hospitals.example/org-b/fhir", async () => {
  const r = await fed.eventually("A reaches B's FHIR server", async () => {
    const x = await viaA(`/Patient/${patientId}`);
    return x.status === 200 && x;
  });
  const p = r.json() as { resourceType: string; id: string; name: { family: string }[] };
  assert.equal(p.resourceType, "Patient");
  assert.equal(p.id, patientId);
  assert.equal(p.name[0]!.family, "Federated");
});

test("a deny policy on B's network makes the next call 403 naming the rule; removing it restores the call", async (t) => {
  const t0 = Date.now();
  await B.apply(fed.network("B", { policies: [DENY_A] }));
  const denied = await fed.eventually("A's call denied at B", async () => {
    const x = await viaA(`/Patient/${patientId}`);
    return x.status === 403 && x;
  });
  const denyMs = Date.now() - t0;
  const oo = denied.json() as { resourceType: string; issue: { code: string; diagnostics: string }[] };
  assert.equal(oo.resourceType, "OperationOutcome");
  assert.match(oo.issue[0]!.diagnostics, /no-org-a-at-b-fhir/);
  const line = await fed.gwB.waitForLog((l) => l.message === "network policy denied");
  assert.equal(line.rule, "no-org-a-at-b-fhir");
  assert.equal(line.peer, `spiffe://${DOMAIN}/org/org-a/gateway/gw-a`);

  const t1 = Date.now();
  await B.apply(fed.network("B"));
  const back = await fed.eventually("A's call allowed again", async () => {
    const x = await viaA(`/Patient/${patientId}`);
    return x.status === 200 && x;
  });
  const allowMs = Date.now() - t1;
  assert.equal((back.json() as { id: string }).id, patientId);
  t.diagnostic(
    `policy added → 403 at A: ${(denyMs / 1000).toFixed(1)} s; removed → 200: ${(allowMs / 1000).toFixed(1)} s`,
  );
});
