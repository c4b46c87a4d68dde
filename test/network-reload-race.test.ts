/**
 * The end-to-end race of issue 17 (B's data plane refused A's client certificate long after B's
 * operator had imported A's CA): a network file written while the data plane builds its config
 * was marked as seen without being served, because the watcher digested the files after the build
 * instead of before it. Under CI load a build takes seconds, and a peer's CA lands in the trust
 * bundle exactly while the data planes start.
 *
 * To hold the build open without a timing guess, the config names an api_key `keys_file` that is a
 * FIFO: the build blocks reading it (after it has read the network files) until this test writes
 * the keys, and the test updates the trust bundle and directory in that pause.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { eventually, sleep, startDataplane, startUpstream, stopAll, tempDir } from "../dataplane/test/helpers.js";
import { createCa, issueLeaf, spiffe } from "./network-pki.js";
import { DOMAIN, NETWORK, mtls, networkFiles, type Gw } from "./network-fixture.js";

const stops: (() => unknown)[] = [];
after(() => stopAll(stops));

function directory(g: Gw, orgs: string[], entries: Record<string, unknown>[]): void {
  writeFileSync(
    join(g.dir, "directory.json.tmp"),
    JSON.stringify({ version: 1, network: NETWORK, domain: DOMAIN, groups: [{ network: NETWORK, orgs }], entries }),
  );
  renameSync(join(g.dir, "directory.json.tmp"), join(g.dir, "directory.json"));
}

test("a peer CA written to the bundle while the data plane builds its config is served once the build is done", async () => {
  const net = await networkFiles();
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json" }).end('{"resourceType":"CapabilityStatement"}');
  });
  stops.push(() => upstream.close());
  const peerCa = createCa("peer cluster P network CA");
  const peer = issueLeaf(peerCa, [spiffe(DOMAIN, "org-p", "gw-p")]);
  directory(net.b, ["org-a", "org-b"], net.entries);

  const fifo = join(tempDir("harmony-fifo-"), "keys");
  execFileSync("mkfifo", [fifo]);
  writeFileSync(
    join(net.b.dir, "harmony.toml"),
    net.configB(`${upstream.url}/fhir`) +
      `[network.plain.http]
bind_address = "127.0.0.1"
bind_port = 0
[pipelines.keyed]
networks = ["plain"]
endpoints = ["keyed_in"]
backends = ["keyed_out"]
middleware = ["keyed_auth"]
[endpoints.keyed_in]
service = "http"
options = { path_prefix = "/keyed" }
[backends.keyed_out]
service = "http"
options = { base_url = "${upstream.url}" }
[middleware.keyed_auth]
type = "api_key"
options = { keys_file = "${fifo}" }
`,
  );
  // The FIFO is fed by a poll that never blocks: a non-blocking open for writing fails (ENXIO)
  // until B's build opens it for reading, i.e. until the build is inside that read, past the
  // network files. The first time, peer P's import lands first: its CA in the bundle, its org in
  // the group. Every later read (a reload) is fed too, so the data plane is never left blocked.
  let reads = 0;
  let feeding = true;
  const feeder = (async () => {
    while (feeding) {
      let fd: number | undefined;
      try {
        fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        await sleep(50);
        continue;
      }
      if (reads++ === 0) {
        writeFileSync(join(net.b.dir, "ca.crt"), net.ca.certPem + peerCa.certPem);
        directory(net.b, ["org-a", "org-b", "org-p"], net.entries);
      }
      writeSync(fd, "sha256:" + "ab".repeat(32) + "\n");
      closeSync(fd);
      await sleep(50);
    }
  })();
  stops.push(async () => {
    feeding = false;
    await feeder;
  });
  const b = await startDataplane(join(net.b.dir, "harmony.toml"), { HARMONY_POLL_MS: "200" });
  stops.push(() => b.stop());
  assert.ok(reads > 0, "the startup build read the FIFO");

  const r = await eventually(
    "B serves peer P",
    async () => {
      const x = await mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem, client: peer });
      return x.status === 200 && x;
    },
    { timeoutMs: 30_000, context: () => JSON.stringify(b.logs.slice(-10)) },
  );
  assert.match(r.text, /CapabilityStatement/);
});
