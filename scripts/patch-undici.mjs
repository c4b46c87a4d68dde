#!/usr/bin/env node
// Applies Harmony's fix for nodejs/undici#5360 to an installed undici 7.x (the line that runs on
// Node 20; the upstream fix, nodejs/undici#5474, shipped in undici 8, which needs Node 22).
//
// The bug: when a response body waits on backpressure and the HTTP/1 parser pauses exactly at
// its last byte, a FIN from a `Connection: close` peer makes Parser.finish() hit
// assert(!this.paused) inside a socket 'end' handler: an uncatchable AssertionError that ends the
// process. The data plane met it building a 1 GiB JMIX package from Orthanc (bench/jmix). The
// fix drives the paused parser over what the socket still holds (the body stream buffers it) so
// the response completes normally, as undici 8 does.
//
//   node scripts/patch-undici.mjs [node_modules dir]   idempotent; exits 1 if undici has changed shape
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const MARKER = "harmony: nodejs/undici#5360";
const modules = process.argv[2] ?? join(import.meta.dirname, "..", "node_modules");
const file = join(modules, "undici/lib/dispatcher/client-h1.js");
const { version } = JSON.parse(readFileSync(join(modules, "undici/package.json"), "utf8"));
const src = readFileSync(file, "utf8");

if (src.includes(MARKER)) process.exit(0);
if (!version.startsWith("7.")) {
  console.error(`patch-undici: undici ${version} is not 7.x; check whether it still needs the #5360 fix`);
  process.exit(1);
}
const before = `  finish () {
    assert(currentParser === null)
    assert(this.ptr != null)
    assert(!this.paused)
`;
const after = `  finish () {
    assert(currentParser === null)
    assert(this.ptr != null)

    // ${MARKER} (scripts/patch-undici.mjs in Harmony): the peer closed while the body waited
    // on backpressure. Drive the parser over what the socket still holds so the message completes.
    while (this.paused && this.ptr != null) {
      this.llhttp.llhttp_resume(this.ptr)
      this.paused = false
      const chunk = this.socket.read()
      this.execute(chunk || EMPTY_BUF)
      if (this.paused && chunk === null) {
        // Nothing left to feed (an EOF-delimited body): llhttp_finish below delivers the end.
        this.llhttp.llhttp_resume(this.ptr)
        this.paused = false
      }
    }
    if (this.ptr == null) {
      return null
    }
`;
if (!src.includes(before)) {
  console.error(`patch-undici: Parser.finish() in undici ${version} is not the code this patch expects`);
  process.exit(1);
}
writeFileSync(file, src.replace(before, after));
console.error(`patch-undici: applied the #5360 fix to undici ${version}`);
