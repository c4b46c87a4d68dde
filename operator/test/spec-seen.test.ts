/** Which informer events reach a gateway: spec, labels, annotations and deletion do; status-only updates do not. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SpecSeen, endpointFingerprint, gatewayFingerprint, pipelineFingerprint } from "../src/runner/spec-seen.js";

const meta = (extra: object = {}) => ({ generation: 3, resourceVersion: "100", labels: { a: "1", b: "2" }, ...extra });

test("a status-only update of a pipeline is no news to its gateway; spec, labels and deletion are", () => {
  const s = new SpecSeen();
  assert.equal(s.changed("ns/p", "add", pipelineFingerprint(meta())), true);
  // Our own status write: new resourceVersion, same generation; labels listed in another order.
  assert.equal(
    s.changed("ns/p", "update", pipelineFingerprint(meta({ resourceVersion: "101", labels: { b: "2", a: "1" } }))),
    false,
  );
  assert.equal(s.changed("ns/p", "update", pipelineFingerprint(meta({ generation: 4 }))), true);
  assert.equal(s.changed("ns/p", "update", pipelineFingerprint(meta({ generation: 4, labels: { a: "1" } }))), true);
  const deleting = meta({ generation: 4, labels: { a: "1" }, deletionTimestamp: new Date() });
  assert.equal(s.changed("ns/p", "update", pipelineFingerprint(deleting)), true);
  assert.equal(s.changed("ns/p", "delete", pipelineFingerprint(deleting)), true);
  // An add always counts, even one that looks like what was seen before (an informer restart).
  assert.equal(s.changed("ns/p", "add", pipelineFingerprint(meta())), true);
  assert.equal(s.changed("ns/p", "add", pipelineFingerprint(meta())), true);
});

test("a gateway's annotations count (a network directory reads its address from one); an endpoint's spec only", () => {
  const s = new SpecSeen();
  s.changed("ns/g", "add", gatewayFingerprint(meta()));
  assert.equal(s.changed("ns/g", "update", gatewayFingerprint(meta({ resourceVersion: "7" }))), false);
  assert.equal(s.changed("ns/g", "update", gatewayFingerprint(meta({ annotations: { x: "y" } }))), true);
  s.changed("ns/e", "add", endpointFingerprint(meta()));
  assert.equal(s.changed("ns/e", "update", endpointFingerprint(meta({ labels: {} }))), false);
  assert.equal(s.changed("ns/e", "update", endpointFingerprint(meta({ generation: 9 }))), true);
});
