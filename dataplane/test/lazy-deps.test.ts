/**
 * Libraries only some configs use are loaded when a config uses them, not at start-up
 * (src/lazy-module.ts). A data plane that only proxies HTTP does not carry the AWS SDK, archiver
 * or dcmjs-dimse in its heap: each full GC marks the whole live heap, and streaming large bodies
 * triggers full GCs often, so the heap's size showed up as CPU per MiB (issue 18). The modules a
 * process resolves are recorded by a preloaded hook (HOOK).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { baseConfig, http, proxyPipeline, startUpstream, tempDir, writeTree, startDataplane } from "./helpers.js";

// Preloaded with --import: appends every specifier the process resolves, by import or require
// (Node's synchronous hooks see both), to $RECORD_MODULES.
const HOOK =
  "data:text/javascript," +
  encodeURIComponent(`
    import { appendFileSync } from "node:fs";
    import { registerHooks } from "node:module";
    registerHooks({
      resolve(specifier, context, next) {
        appendFileSync(process.env.RECORD_MODULES, specifier + "\\n");
        return next(specifier, context);
      },
    });`);

/** Starts a data plane on `config`, serves one request through `path`, returns what it resolved. */
async function modulesResolvedBy(config: string, path: string): Promise<{ modules: string[]; status: number }> {
  const record = join(tempDir("harmony-modules-"), "modules.txt");
  const dir = writeTree({ "config.toml": config });
  const dp = await startDataplane(join(dir, "config.toml"), {
    NODE_OPTIONS: `--import=${HOOK}`,
    RECORD_MODULES: record,
  });
  try {
    const r = await http(dp.url("default", path));
    return { modules: readFileSync(record, "utf8").split("\n"), status: r.status };
  } finally {
    await dp.stop();
  }
}

const heavy = (mods: string[]) =>
  mods.filter((m) => m.startsWith("@aws-sdk/") || m === "archiver" || m === "dcmjs-dimse");

test("an HTTP proxy config never loads the AWS SDK, archiver or dcmjs-dimse", async () => {
  const up = await startUpstream((_req, res) => res.end("ok"));
  try {
    const { modules, status } = await modulesResolvedBy(baseConfig(proxyPipeline("p", "/p", up.url)), "/p/x");
    assert.equal(status, 200);
    assert.ok(modules.includes("undici"), "the hook records the data plane's own imports");
    assert.deepEqual(heavy(modules), []);
  } finally {
    await up.close();
  }
});

test("a config with an S3 storage backend loads the AWS SDK when it is built", async () => {
  const config = baseConfig(`
[pipelines.files]
networks = ["default"]
endpoints = ["files_in"]
backends = ["files_out"]

[endpoints.files_in]
service = "http"
options = { path_prefix = "/files" }

[backends.files_out]
service = "storage"
[backends.files_out.options]
root = "s3://bucket/prefix"
region = "us-east-1"
endpoint = "http://127.0.0.1:9"
`);
  const { modules } = await modulesResolvedBy(config, "/files/none");
  assert.ok(heavy(modules).includes("@aws-sdk/client-s3"), heavy(modules).join(", "));
});

test("a config with a dicom backend loads dcmjs-dimse when it is built", async () => {
  const config = baseConfig(`
[pipelines.pacs]
networks = ["default"]
endpoints = ["pacs_in"]
backends = ["pacs_out"]

[endpoints.pacs_in]
service = "dicomweb"
options = { path_prefix = "/dicom-web" }

[backends.pacs_out]
service = "dicom"
[backends.pacs_out.options]
host = "127.0.0.1"
port = 9
aet = "NOBODY"
`);
  const { modules } = await modulesResolvedBy(config, "/dicom-web/studies");
  assert.ok(heavy(modules).includes("dcmjs-dimse"), heavy(modules).join(", "));
});
