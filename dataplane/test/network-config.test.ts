/**
 * `[harmony_networks.*]` and `harmony_network` at load (`--check`, the real binary): a good network
 * checks clean with 0 warnings; each broken piece is an error on its key that names the file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, writeTree } from "./helpers.js";
import { createCa, issueLeaf, spiffe } from "../../test/network-pki.js";

const ca = createCa("check CA");
const leaf = issueLeaf(ca, [spiffe("h.example", "org-a", "gw-a")]);
const directory = JSON.stringify({
  version: 1,
  network: "h",
  domain: "h.example",
  groups: [{ orgs: ["org-a", "org-b"] }],
  entries: [],
  policies: [],
});

function config(extra = "", net: Record<string, string> = {}): string {
  const keys = {
    domain: '"h.example"',
    org: '"org-a"',
    cert_path: '"tls.crt"',
    key_path: '"tls.key"',
    trust_bundle_path: '"ca.crt"',
    directory_path: '"directory.json"',
    ...net,
  };
  return `[proxy]
id = "check"
[harmony_networks.h]
${Object.entries(keys)
  .map(([k, v]) => `${k} = ${v}`)
  .join("\n")}
[network.inter]
harmony_network = "h"
[network.inter.http]
bind_address = "127.0.0.1"
bind_port = 0
[pipelines.p]
networks = ["inter"]
endpoints = ["p_in"]
backends = ["p_out"]
[endpoints.p_in]
service = "http"
options = { path_prefix = "/p" }
[backends.p_out]
service = "echo"
${extra}`;
}

async function check(toml: string, files: Record<string, string> = {}) {
  const dir = writeTree({
    "config.toml": toml,
    "tls.crt": leaf.certPem,
    "tls.key": leaf.keyPem,
    "ca.crt": ca.certPem,
    "directory.json": directory,
    ...files,
  });
  return { dir, ...(await runCli(["--check", "--config", join(dir, "config.toml")])) };
}

test("a complete harmony network checks clean", async () => {
  const r = await check(config());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /0 warning\(s\)/);
});

test("each file that does not fit is an error naming it", async () => {
  const other = issueLeaf(ca, [spiffe("h.example", "org-b", "gw-b")]);
  const cases: [Record<string, string>, Record<string, string>, RegExp][] = [
    [{}, { "directory.json": "{" }, /harmony_networks\.h\.directory_path.*directory\.json: not JSON/],
    [{}, { "directory.json": directory.replace('"h.example"', '"x.example"') }, /domain is "x\.example"/],
    [{}, { "tls.crt": other.certPem, "tls.key": other.keyPem }, /tls\.crt is for org "org-b", not "org-a"/],
    [{}, { "tls.key": issueLeaf(ca, []).keyPem }, /harmony_networks\.h\.key_path/],
    [{}, { "ca.crt": "nothing" }, /ca\.crt holds no PEM certificate/],
    [{ directory_path: '"missing.json"' }, {}, /cannot read .*missing\.json: ENOENT/],
  ];
  for (const [net, files, expected] of cases) {
    const r = await check(config("", net), files);
    assert.equal(r.code, 1, `${String(expected)}: ${r.stdout}`);
    assert.match(r.stderr, expected);
  }
});

test("harmony_network naming no [harmony_networks] entry, and a harmony:// target of no network's domain", async () => {
  const r1 = await check(config().replace('harmony_network = "h"', 'harmony_network = "nope"'));
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /network\.inter\.harmony_network.*\[harmony_networks\.nope\] is not defined/);
  const r2 = await check(
    config(`[pipelines.q]
networks = ["inter"]
endpoints = ["q_in"]
backends = ["q_out"]
[endpoints.q_in]
service = "http"
options = { path_prefix = "/q" }
[backends.q_out]
service = "http"
options = { target = "harmony://elsewhere.example/org-b/x" }
`),
  );
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /no harmony network has the domain of harmony:\/\/elsewhere\.example\/org-b\/x/);
  // A URI of our domain the directory does not hold (yet) is only a warning: it may appear later.
  const r3 = await check(
    config(`[pipelines.q]
networks = ["inter"]
endpoints = ["q_in"]
backends = ["q_out"]
[endpoints.q_in]
service = "http"
options = { path_prefix = "/q" }
[backends.q_out]
service = "http"
options = { target = "harmony://h.example/org-b/x" }
`),
  );
  assert.equal(r3.code, 0, r3.stderr);
  assert.match(r3.stdout + r3.stderr, /is not in the directory of network h/);
});

test("a dicom backend with a harmony:// target: the entry must be dicom, and C-MOVE is refused", async () => {
  const pacs = {
    uri: "harmony://h.example/org-b/pacs",
    org: "org-b",
    endpoint: "pacs",
    protocol: "dicom",
    address: "127.0.0.1",
    port: 11112,
    ae_title: "PACS",
    identity: spiffe("h.example", "org-b", "gw-b"),
  };
  const web = { ...pacs, uri: "harmony://h.example/org-b/web", protocol: "dicomweb", path_prefix: "/web" };
  const files = { "directory.json": directory.replace('"entries":[]', `"entries":${JSON.stringify([pacs, web])}`) };
  const backend = (options: string) =>
    config(`[pipelines.d]
endpoints = ["d_in"]
backends = ["d_out"]
[endpoints.d_in]
service = "dicom"
options = { port = 0, bind_address = "127.0.0.1" }
[backends.d_out]
service = "dicom"
options = { ${options} }
`);
  const ok = await check(backend('target = "harmony://h.example/org-b/pacs"'), files);
  assert.equal(ok.code, 0, ok.stderr);
  const move = await check(
    backend('target = "harmony://h.example/org-b/pacs", retrieve = "move", move_port = 11113'),
    files,
  );
  assert.equal(move.code, 1);
  assert.match(move.stderr, /backends\.d_out\.options\.retrieve.*retrieves with C-GET/);
  const notDicom = await check(backend('target = "harmony://h.example/org-b/web"'), files);
  assert.equal(notDicom.code, 1);
  assert.match(notDicom.stderr, /is a dicomweb endpoint, not dicom/);
});
