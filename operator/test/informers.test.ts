/** What the informer caches keep of an object: all but managedFields, which nothing reads. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { slim } from "../src/provider/informers.js";

test("slim drops managedFields and keeps everything the operator reads", () => {
  const o = {
    apiVersion: "harmony.runbeam.io/v1alpha1",
    kind: "HarmonyPipeline",
    metadata: {
      name: "p",
      namespace: "ns",
      generation: 2,
      labels: { a: "b" },
      annotations: { x: "y" },
      managedFields: [{ manager: "kubectl", operation: "Apply", fieldsV1: { "f:spec": {} } }],
    },
    spec: { gatewayRef: { name: "g" } },
    status: { conditions: [] },
  };
  const s = slim(o);
  assert.equal(s, o); // in place: the cache holds what the watch delivered, nothing copied
  assert.equal("managedFields" in s.metadata, false);
  assert.deepEqual(s.metadata, {
    name: "p",
    namespace: "ns",
    generation: 2,
    labels: { a: "b" },
    annotations: { x: "y" },
  });
  assert.deepEqual(s.spec, { gatewayRef: { name: "g" } });
});
