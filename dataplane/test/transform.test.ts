/**
 * The `transform` middleware over real sockets: a JOLT chain rewrites the request body the
 * backend receives and the response body the client receives, with and without context; a broken
 * spec is a config error; a transform that fails on a body is a 500 or a pass-through, as set.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { baseConfig, http, runCli, startDataplane, startUpstream, writeTree, type Dataplane } from "./helpers.js";

let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;

const pipe = (name: string, mw: string, backend: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_t"]
backends = ["${backend}"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }

[middleware.${name}_t]
type = "transform"
options = ${mw}
`;

before(async () => {
  upstream = await startUpstream((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(
      JSON.stringify({ resourceType: "Patient", id: "p1", name: [{ family: "Doe", given: ["Jane"] }], _internal: "x" }),
    );
  });
  const dir = writeTree({
    // Specs live in transforms/ (proxy.transforms_path's default).
    "config.toml": baseConfig(
      pipe("req", `{ spec_path = "to-fhir.json", apply = "left" }`, "echo") +
        pipe("resp", `{ spec_path = "from-fhir.json", apply = "right" }`, "up") +
        pipe("ctx", `{ spec_path = "with-context.json", apply = "left", inject_context = true }`, "echo") +
        pipe("soft", `{ spec_path = "strict.json", apply = "left", fail_on_error = false }`, "echo") +
        pipe("hard", `{ spec_path = "strict.json", apply = "left" }`, "echo") +
        pipe("mod", `{ spec_path = "modify.json", apply = "left" }`, "echo") +
        `
[backends.echo]
service = "echo"

[backends.up]
service = "http"
options = { base_url = "${upstream.url}" }
`,
    ),
    "transforms/to-fhir.json": JSON.stringify([
      {
        operation: "shift",
        spec: { patient: { last: "name[0].family", first: "name[0].given[0]", mrn: "identifier[0].value" } },
      },
      { operation: "default", spec: { resourceType: "Patient" } },
    ]),
    "transforms/from-fhir.json": JSON.stringify([
      {
        operation: "shift",
        spec: { id: "patientId", name: { "0": { family: "lastName", given: { "0": "firstName" } } } },
      },
    ]),
    "transforms/with-context.json": JSON.stringify([
      {
        operation: "shift",
        spec: { data: { "*": "data.body.&" }, context: { request_details: { method: "data.method" } } },
      },
    ]),
    "transforms/strict.json": JSON.stringify([{ operation: "cardinality", spec: { x: "SOME" } }]),
    "transforms/modify.json": JSON.stringify([
      {
        operation: "modify-overwrite-beta",
        spec: { name: { "*": { family: "=toUpper" } }, active: "=toBoolean", mrn: "=concat('MRN-', @(1,mrn))" },
      },
      { operation: "modify-default-beta", spec: { resourceType: "Patient", active: false } },
    ]),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await upstream?.close();
});

const post = (path: string, body: unknown) =>
  http(dp.url("default", path), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

test("left: the backend receives the transformed body", async () => {
  const r = await post("/req/x", { patient: { last: "Doe", first: "Jane", mrn: "123" } });
  assert.equal(r.status, 200);
  assert.deepEqual((JSON.parse(r.text) as { json: unknown }).json, {
    name: [{ family: "Doe", given: ["Jane"] }],
    identifier: [{ value: "123" }],
    resourceType: "Patient",
  });
});

test("right: the client receives the transformed response", async () => {
  const r = await http(dp.url("default", "/resp/x"));
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), { patientId: "p1", lastName: "Doe", firstName: "Jane" });
  assert.equal(r.headers["content-length"], String(Buffer.byteLength(r.text)));
});

test("inject_context: the spec sees the request and its data output is the body", async () => {
  const r = await post("/ctx/x", { a: 1 });
  assert.deepEqual((JSON.parse(r.text) as { json: unknown }).json, { body: { a: 1 }, method: "POST" });
});

test("modify-*-beta: functions and lookups rewrite values in place", async () => {
  const r = await post("/mod/x", { name: [{ family: "Doe" }], active: "true", mrn: 123 });
  assert.equal(r.status, 200);
  assert.deepEqual((JSON.parse(r.text) as { json: unknown }).json, {
    name: [{ family: "DOE" }],
    active: true,
    mrn: "MRN-123",
    resourceType: "Patient",
  });
});

test("a transform that fails on a body: 500, or the body passes on with fail_on_error = false", async () => {
  const hard = await post("/hard/x", { x: [1] });
  assert.equal(hard.status, 500);
  assert.equal((JSON.parse(hard.text) as { detail: string }).detail, "the configured transform failed on this body");
  const soft = await post("/soft/x", { x: [1] });
  assert.equal(soft.status, 200);
  assert.deepEqual((JSON.parse(soft.text) as { json: unknown }).json, { x: [1] });
});

test("a missing or broken spec is a config error", async () => {
  const dir = writeTree({
    "config.toml": baseConfig(
      pipe("a", `{ spec_path = "missing.json" }`, "echo") +
        pipe("b", `{ spec_path = "bad.json" }`, "echo") +
        pipe("c", `{ spec_path = "unknown-op.json" }`, "echo") +
        pipe("d", `{ spec_path = "unknown-fn.json" }`, "echo") +
        `\n[backends.echo]\nservice = "echo"\n`,
    ),
    "transforms/bad.json": "{ not json",
    "transforms/unknown-op.json": JSON.stringify([{ operation: "transpose", spec: {} }]),
    "transforms/unknown-fn.json": JSON.stringify([{ operation: "modify-overwrite-beta", spec: { a: "=fooBar" } }]),
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 1);
  assert.match(out, /middleware\.a_t\.options\.spec_path: cannot read missing\.json: ENOENT/);
  assert.match(out, /middleware\.b_t\.options\.spec_path: bad\.json is not JSON/);
  assert.match(
    out,
    /middleware\.c_t\.options\.spec_path: unknown-op\.json\[0\]\.operation: "transpose" is not supported/,
  );
  assert.match(out, /middleware\.d_t\.options\.spec_path: unknown-fn\.json\[0\]\.spec: unknown function "fooBar" at a/);
});
