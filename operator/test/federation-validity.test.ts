/** How long an imported peer export is trusted (network/federation.ts importValidUntil), and what verifyExport reports for it. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createNetworkCa, fingerprint } from "../src/network/pki.js";
import {
  DEFAULT_MAX_IMPORT_VALIDITY_SECONDS,
  importValidUntil,
  signExport,
  verifyExport,
} from "../src/network/federation.js";

const ca = createNetworkCa("hospitals", "hospitals.example", 30);
const payload = {
  network: "hospitals",
  domain: "hospitals.example",
  issuer_cluster: "a",
  entries: [],
  trust_bundle_pem: ca.caPem,
};

test("an export is trusted until its exp, or its signing time plus the cap when that comes first", async () => {
  const signed = Date.parse("2026-12-06T00:00:00.250Z");
  const short = await verifyExport(await signExport(ca, payload, 3600, signed), fingerprint(ca.caPem), "p", {
    ignoreExpiry: true,
  });
  assert.equal(short.serial, signed);
  // exp is whole seconds after the (truncated) issue time.
  assert.equal(importValidUntil(short, 86400), Date.parse("2026-12-06T01:00:00Z"));

  const tenYears = await verifyExport(
    await signExport(ca, payload, 10 * 365 * 86400, signed),
    fingerprint(ca.caPem),
    "p",
    { ignoreExpiry: true },
  );
  assert.equal(importValidUntil(tenYears, DEFAULT_MAX_IMPORT_VALIDITY_SECONDS), signed + 86_400_000, "capped");
  assert.equal(importValidUntil(tenYears, 60), signed + 60_000);
});
