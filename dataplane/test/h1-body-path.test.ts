/**
 * The llhttp engine's body path (issue 18, 1 MiB): a response body read into the connection's own
 * buffer again and again while the handler says each chunk is gone (CHUNK_RELEASED), never
 * overwritten under a handler that keeps chunks. Real sockets on 127.0.0.1, the pool in-process.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Dispatcher } from "undici";
import { H1Pool } from "../src/http1/pool.js";
import { CHUNK_RELEASED, LENT_FROM } from "../src/http1/read-buffer.js";

const MiB = 1024 * 1024;
const BODY = randomBytes(8 * MiB);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let server: Server;
let origin = "";

before(async () => {
  server = createServer((_req, res) => {
    res.writeHead(200, { "content-length": String(BODY.length) });
    res.end(BODY);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const pool = () =>
  new H1Pool(origin, {
    connections: 4,
    keepAliveTimeout: 4000,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
    connectTimeout: 5000,
  });

/** Dispatches and collects the answer; `onChunk` sees each chunk as delivered. */
function exchange(
  p: H1Pool,
  opts: Dispatcher.DispatchOptions,
  handler: Partial<Dispatcher.DispatchHandler> & { [CHUNK_RELEASED]?(): boolean },
): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    p.dispatch(opts, {
      ...handler,
      onResponseStart: (_c, s) => void (status = s),
      onResponseEnd: () => resolve(status),
      onResponseError: (_c, e) => reject(e),
    });
  });
}

test("a handler that releases each chunk gets them in one reused buffer, bytes intact", async () => {
  const p = pool();
  try {
    const hash = createHash("sha256");
    const backing = new Set<ArrayBufferLike>();
    let chunks = 0;
    let lent = 0;
    const status = await exchange(
      p,
      { method: "GET", path: "/", headers: {} },
      {
        onResponseData: (_c, chunk: Buffer) => {
          hash.update(chunk); // used at once, kept by nobody
          chunks++;
          if (chunk.length < LENT_FROM) return; // small ones come as copies
          backing.add(chunk.buffer);
          lent++;
        },
        [CHUNK_RELEASED]: () => true,
      },
    );
    assert.equal(status, 200);
    assert.equal(hash.digest("hex"), sha(BODY));
    assert.ok(lent > 8, `the body came in several large reads (${lent} of ${chunks} chunks)`);
    // Node's own reads allocate a buffer per read: as many backing stores as chunks.
    assert.ok(backing.size <= 2, `${lent} large chunks in ${backing.size} buffers: reads did not reuse the buffer`);
  } finally {
    await p.destroy();
  }
});

test("chunks a handler keeps are never overwritten by later reads", async () => {
  const p = pool();
  try {
    for (const mode of ["keeps all", "keeps every other"] as const) {
      const kept: Buffer[] = [];
      let n = 0;
      let last = false;
      const handler: Partial<Dispatcher.DispatchHandler> & { [CHUNK_RELEASED]?(): boolean } = {
        onResponseData: (_c, chunk: Buffer) => {
          // "keeps every other": alternately copied (released) and kept as given (not released).
          last = mode === "keeps every other" && n++ % 2 === 0;
          kept.push(last ? Buffer.from(chunk) : chunk);
        },
      };
      if (mode === "keeps every other") handler[CHUNK_RELEASED] = () => last;
      assert.equal(await exchange(p, { method: "GET", path: "/", headers: {} }, handler), 200);
      const got = Buffer.concat(kept);
      assert.equal(got.length, BODY.length, mode);
      assert.equal(sha(got), sha(BODY), `${mode}: a kept chunk was overwritten`);
    }
  } finally {
    await p.destroy();
  }
});
