/**
 * The DICOMweb endpoint's CORS: no origin is trusted by default; `cors_any_origin_when_unset`
 * restores Harmony's answer of "*" to every origin when no `cors_allow_origins` are listed, and a
 * list, when given, still decides. Preflights and simple requests, over HTTP.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { baseConfig, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

let dp: Dataplane;

const dicomweb = (name: string, options: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["echo"]

[endpoints.${name}_in]
service = "dicomweb"
options = { path_prefix = "/${name}"${options} }
`;

before(async () => {
  const dir = writeTree({
    "config.toml": baseConfig(`
${dicomweb("compat", ", cors_any_origin_when_unset = true")}
${dicomweb("strict", "")}
${dicomweb("listed", ', cors_any_origin_when_unset = true, cors_allow_origins = ["https://viewer.example"]')}

[backends.echo]
service = "echo"
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
});

const preflight = (prefix: string, origin: string) =>
  fetch(dp.url("default", `/${prefix}/studies`), {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "GET" },
  });
const get = (prefix: string, origin: string) =>
  fetch(dp.url("default", `/${prefix}/studies`), { headers: { origin, accept: "application/dicom+json" } });

test("cors_any_origin_when_unset: any origin gets '*' on preflights and requests", async () => {
  const pre = await preflight("compat", "https://anywhere.example");
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  assert.match(pre.headers.get("access-control-allow-methods") ?? "", /GET/);
  const res = await get("compat", "https://anywhere.example");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
});

test("by default no origin is trusted", async () => {
  const pre = await preflight("strict", "https://anywhere.example");
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), null);
  assert.equal(pre.headers.get("access-control-allow-methods"), null);
  assert.equal((await get("strict", "https://anywhere.example")).headers.get("access-control-allow-origin"), null);
});

test("with cors_allow_origins listed, the list decides even with the option on", async () => {
  assert.equal(
    (await preflight("listed", "https://anywhere.example")).headers.get("access-control-allow-origin"),
    null,
  );
  const ok = await get("listed", "https://viewer.example");
  assert.equal(ok.headers.get("access-control-allow-origin"), "https://viewer.example");
});
