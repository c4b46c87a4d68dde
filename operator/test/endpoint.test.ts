/** A HarmonyEndpoint checked alone by the data plane's validator, and the watch-namespace list. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkEndpoint, endpointOptions } from "../src/translator/endpoint.js";
import { parseNamespaces } from "../src/provider/cache.js";
import type { HarmonyEndpoint } from "../src/api/v1alpha1.js";

const ep = (spec: HarmonyEndpoint["spec"]): HarmonyEndpoint => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyEndpoint",
  metadata: { name: "e", namespace: "n" },
  spec,
});

test("typed fields become data-plane options and win over free-form ones", () => {
  assert.deepEqual(endpointOptions({ service: "http", pathPrefix: "/a", options: { path_prefix: "/b", x: 1 } }), {
    path_prefix: "/a",
    x: 1,
  });
  assert.deepEqual(endpointOptions({ service: "dicom", aeTitle: "HARMONY", port: 11112 }), {
    local_aet: "HARMONY",
    port: 11112,
  });
});

test("a valid endpoint is accepted; an unknown option is a warning with a suggestion", () => {
  assert.deepEqual(checkEndpoint(ep({ service: "http", pathPrefix: "/x" })), {
    ok: true,
    reason: "Accepted",
    message: "http endpoint accepted",
    issues: [],
  });
  // An unknown option refuses the endpoint (the data plane would run without it), with the closest known key.
  const typo = checkEndpoint(ep({ service: "http", pathPrefix: "/x", options: { bogus: 1, path_prefx: "/y" } }));
  assert.equal(typo.ok, false);
  assert.equal(typo.reason, "InvalidOptions");
  assert.ok(typo.issues.every((i) => i.unknownOption));
  assert.match(typo.message, /spec\.options\.bogus: unknown option(;|$)/);
  assert.match(typo.message, /spec\.options\.path_prefx: unknown option; did you mean "path_prefix"\?/);
});

test("bad options are reported with the user's key path", () => {
  const v = checkEndpoint(ep({ service: "http", pathPrefix: "/x", methods: [] }));
  assert.equal(v.ok, false);
  assert.equal(v.reason, "InvalidOptions");
  assert.equal(v.message, "spec.methods: must NOT have fewer than 1 items");
});

test("watch namespaces: a comma list, trimmed, de-duplicated; empty means all", () => {
  assert.deepEqual(parseNamespaces(" b, a,,b "), ["a", "b"]);
  assert.deepEqual(parseNamespaces(""), []);
  assert.deepEqual(parseNamespaces(undefined), []);
});
