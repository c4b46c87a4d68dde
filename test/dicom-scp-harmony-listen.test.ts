/**
 * Where a Harmony `dicom_scp` endpoint listens: `bind_addr` (Harmony's spelling of bind_address)
 * is the address the listener binds, checked with dcmtk's echoscu on two loopback addresses; and
 * without `port` it is DICOM's 11112, checked through the config's port-clash rule so that the
 * test never binds a fixed port on a shared machine.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { baseConfig, freePort, runCli, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

let dp: Dataplane;
let port: number;

const echoAt = (host: string) =>
  spawnSync("echoscu", ["-to", "5", "-aec", "HARMONY", host, String(port)], { encoding: "utf8" }).status;

before(async () => {
  port = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.scp]
endpoints = ["scp"]
backends = ["echo"]

[endpoints.scp]
service = "dicom_scp"
options = { port = ${port}, bind_addr = "127.0.0.2", local_aet = "HARMONY" }

[backends.echo]
service = "echo"
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
});

test("bind_addr is the address the DIMSE listener binds", () => {
  assert.equal(echoAt("127.0.0.2"), 0, "C-ECHO on the bind_addr");
  assert.notEqual(echoAt("127.0.0.1"), 0, "nothing listens on the other loopback address");
});

test("a dicom_scp without port listens on 11112: two of them clash there", async () => {
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.scp]
endpoints = ["scp_a", "scp_b"]
backends = ["echo"]

[endpoints.scp_a]
service = "dicom_scp"
options = { local_aet = "A" }

[endpoints.scp_b]
service = "dicom_scp"
options = { local_aet = "B", bind_addr = "127.0.0.1" }

[backends.echo]
service = "echo"
`),
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /endpoints\.scp_b\.options\.port: port 11112 is already used by endpoint "scp_a"/);
});
