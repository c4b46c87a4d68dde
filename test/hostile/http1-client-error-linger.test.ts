/**
 * A head answered 431 (or 400) while the client is still sending it: the answer must reach the
 * client. node:http closed the connection at the next bytes that arrived after its answer, and a
 * close with unread bytes is a reset, which takes the client's unread answer with it (RFC 9112
 * §9.6, the "TCP reset problem"). The answer is followed by a half-close and the client's bytes
 * are read and discarded for a while (runtime/client-error.ts), on node:http as on the lane.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { MODES, startRig, type Rig } from "./http1-rig.js";
import { sleep } from "../../dataplane/test/helpers.js";

const rigs = new Map<string, Rig>();
before(async () => {
  for (const m of MODES) rigs.set(m, await startRig(m));
});
after(async () => {
  for (const r of rigs.values()) await r.stop();
});

/** Writes `head` and then more bytes for a while without reading; then reads what came. */
async function stillSending(port: number, head: string): Promise<{ got: string; err: string }> {
  const s = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  await new Promise((r) => s.once("connect", r));
  s.pause();
  let got = "";
  let err = "";
  s.on("error", (e: NodeJS.ErrnoException) => (err = e.code ?? e.message));
  s.write(head);
  for (let i = 0; i < 10; i++) {
    await sleep(30);
    if (!s.destroyed) s.write("y".repeat(8192));
  }
  await sleep(200);
  s.on("data", (d: Buffer) => (got += d.toString("latin1")));
  s.resume();
  await sleep(200);
  s.destroy();
  return { got, err };
}

const CASES = [
  { status: "431", head: `GET /lane/a HTTP/1.1\r\nHost: dp.test\r\nX-Big: ${"x".repeat(20_000)}` },
  { status: "400", head: "GET /lane/a HTTP/1.1\r\nHost dp.test\r\n" },
];

for (const m of MODES)
  for (const c of CASES)
    test(`${m}: a client still sending when answered ${c.status} reads the answer`, async () => {
      const r = await stillSending(rigs.get(m)!.port, c.head);
      assert.match(
        r.got,
        new RegExp(`^HTTP/1\\.1 ${c.status} `),
        `got ${JSON.stringify(r.got.slice(0, 60))}, error ${r.err}`,
      );
    });
