/**
 * `jmix_backend` against a real JMIX server: a second data plane whose `jmix` endpoint builds
 * packages from Orthanc. The front plane's `http` endpoint proxies the JMIX API to it through a
 * `[targets.*]` entry (`target_ref`) with `path_prefix`: a package built upstream is served through
 * the proxy byte for byte (by study, by id, its manifest), an upload through it reaches the
 * upstream (201, then 409), and upstream problems pass through unchanged.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startOrthanc, SAMPLES, type Orthanc } from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import { baseConfig, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

const MR = readFileSync(join(SAMPLES, "MR_small.dcm"));
const STUDY = uidsOf(MR).study;

let orthanc: Orthanc;
let upstream: Dataplane;
let front: Dataplane;

const jmix = (name: string, prefix: string, store: string, backend: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_builder"]
backends = ["${backend}"]

[endpoints.${name}_in]
service = "jmix"
options = { path_prefix = "${prefix}" }

[middleware.${name}_builder]
type = "jmix_builder"
options = { store_dir = "${store}" }
`;

before(async () => {
  orthanc = await startOrthanc();
  assert.equal((await fetch(`${orthanc.http}/instances`, { method: "POST", body: MR })).status, 200);
  const udir = writeTree({
    "config.toml": baseConfig(
      jmix("built", "/jmix", "store", "orthanc") +
        jmix("inbox", "/inbox", "inbox", "orthanc") +
        `
[backends.orthanc]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }
`,
    ),
  });
  upstream = await startDataplane(join(udir, "config.toml"));
  const port = upstream.ports.default!;
  const fdir = writeTree({
    "config.toml": baseConfig(`
[targets.jmix_server]
connection.host = "127.0.0.1"
connection.port = ${port}
connection.protocol = "http"
timeout_secs = 60

[pipelines.remote]
networks = ["default"]
endpoints = ["remote_in"]
backends = ["remote_jmix"]

[endpoints.remote_in]
service = "http"
options = { path_prefix = "/remote" }

[backends.remote_jmix]
service = "jmix_backend"
target_ref = "jmix_server"
options = { path_prefix = "/jmix" }

[pipelines.upload]
networks = ["default"]
endpoints = ["upload_in"]
backends = ["upload_jmix"]

[endpoints.upload_in]
service = "http"
options = { path_prefix = "/send" }

[backends.upload_jmix]
service = "jmix_backend"
options = { base_url = "http://127.0.0.1:${port}", path_prefix = "/inbox/" }
`),
  });
  front = await startDataplane(join(fdir, "config.toml"));
});

after(async () => {
  await Promise.all([front?.stop(), upstream?.stop()]);
  await orthanc?.stop();
});

let id = "";
let zip: Buffer;

test("a package built upstream is served through the proxy byte for byte", async () => {
  const r = await fetch(front.url("default", `/remote/api/jmix?studyInstanceUid=${STUDY}`));
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal(r.headers.get("content-type"), "application/zip");
  zip = Buffer.from(await r.arrayBuffer());
  id = /filename="([0-9a-f-]{36})\.zip"/.exec(r.headers.get("content-disposition") ?? "")?.[1] ?? "";
  assert.match(id, /^[0-9a-f-]{36}$/, String(r.headers.get("content-disposition")));

  const direct = await fetch(upstream.url("default", `/jmix/api/jmix/${id}`));
  const viaProxy = await fetch(front.url("default", `/remote/api/jmix/${id}`));
  assert.equal(viaProxy.status, 200);
  assert.deepEqual(Buffer.from(await viaProxy.arrayBuffer()), Buffer.from(await direct.arrayBuffer()));

  const manifest = await fetch(front.url("default", `/remote/api/jmix/${id}/manifest`));
  assert.equal(manifest.status, 200);
  const m = (await manifest.json()) as { id?: string };
  assert.equal(m.id, id);
});

test("an upload through the proxy reaches the upstream: 201, then 409", async () => {
  const post = () =>
    fetch(front.url("default", "/send/api/jmix"), {
      method: "POST",
      headers: { "content-type": "application/zip" },
      body: zip,
    });
  const first = await post();
  assert.equal(first.status, 201, await first.clone().text());
  assert.equal((await fetch(upstream.url("default", `/inbox/api/jmix/${id}/manifest`))).status, 200);
  assert.equal((await post()).status, 409);
});

test("upstream problems pass through: 400 and 404 with problem+json", async () => {
  const bad = await fetch(front.url("default", "/remote/api/jmix/not-a-uuid"));
  assert.equal(bad.status, 400);
  assert.match(String(bad.headers.get("content-type")), /problem\+json/);
  const missing = await fetch(front.url("default", "/remote/api/jmix/00000000-0000-4000-8000-000000000000"));
  assert.equal(missing.status, 404);
});
