/**
 * The server lane across a data plane's life, on both values of `proxy.http1_server`: a kept-alive
 * connection follows a reload's new route (the lane must not keep the route table it started
 * with), and a SIGTERM lets an answer under way finish, ending the connection after it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { eventually, freePort } from "../../dataplane/test/helpers.js";
import { parseResponses } from "./http1-exchange.js";
import { MODES, rigConfig, startRecordingUpstream, startRig, type Rig } from "./http1-rig.js";

/** A raw keep-alive connection and everything it received so far. */
async function keptAlive(rig: Rig): Promise<{ sock: Socket; got: () => Buffer; closed: () => boolean }> {
  const sock = connect(rig.port, "127.0.0.1");
  const chunks: Buffer[] = [];
  let closed = false;
  sock.on("data", (d: Buffer) => chunks.push(d));
  sock.on("close", () => (closed = true));
  sock.on("error", () => undefined);
  await new Promise((r) => sock.once("connect", r));
  return { sock, got: () => Buffer.concat(chunks), closed: () => closed };
}

const answered = (buf: Buffer, methods: string[]) =>
  parseResponses(buf, methods, false).answers.filter((a) => a.complete).length;

for (const mode of MODES) {
  test(`${mode}: a kept-alive connection follows a reload to the route's new upstream`, async () => {
    const rig = await startRig(mode, "", 2000, await freePort());
    const next = await startRecordingUpstream();
    try {
      const c = await keptAlive(rig);
      c.sock.write("GET /lane/k-echo?n=1 HTTP/1.1\r\nHost: dp.test\r\n\r\n");
      await eventually("the first answer", () => answered(c.got(), ["GET"]) === 1);
      const loaded = () => rig.dp.logs.filter((l) => l.message === "config loaded").length;
      const before = loaded();
      writeFileSync(rig.configFile, rigConfig(mode, next.url, "", 2000, rig.port));
      await eventually("the reload", () => loaded() > before, { context: () => rig.dp.stderr() });
      c.sock.write("GET /lane/k-echo?n=2 HTTP/1.1\r\nHost: dp.test\r\n\r\n");
      await eventually("the second answer", () => answered(c.got(), ["GET", "GET"]) === 2);
      c.sock.destroy();
      assert.deepEqual(
        rig.up.seen.map((s) => s.url),
        ["/k-echo?n=1"],
      );
      assert.deepEqual(
        next.seen.map((s) => s.url),
        ["/k-echo?n=2"],
        "the request after the reload did not go to the new upstream",
      );
    } finally {
      await next.close();
      await rig.stop();
    }
  });

  test(`${mode}: SIGTERM lets an answer under way finish, then ends the connection`, async () => {
    const rig = await startRig(mode);
    const c = await keptAlive(rig);
    try {
      c.sock.write("GET /lane/k-echo?n=1&slow=1 HTTP/1.1\r\nHost: dp.test\r\n\r\n");
      await eventually("the request to reach the upstream", () => rig.up.seen.length === 1);
      const exited = rig.dp.stop("SIGTERM");
      await eventually("the connection to end", () => c.closed(), { timeoutMs: 10_000 });
      const { answers } = parseResponses(c.got(), ["GET"], true);
      assert.equal(answers.length, 1, `got: ${c.got().toString("latin1").slice(0, 300)}`);
      assert.match(answers[0]!.statusLine, /^HTTP\/1\.1 200 /);
      assert.equal(answers[0]!.body.toString(), "/k-echo?n=1&slow=1");
      assert.equal(answers[0]!.complete, true);
      assert.equal(await exited, 0);
    } finally {
      c.sock.destroy();
      await rig.stop();
    }
  });
}
