/**
 * readHead (http1/response-head.ts) keeps lower-cased names from one answer to the next (issue 18):
 * every spelling of a name still lands on the same lower-case key, a repeated field still becomes
 * an array, and names past the cache's bound are lower-cased all the same.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { newFraming, readHead } from "../src/http1/response-head.js";
import { headEnd } from "../src/http1/answer-reader.js";
import { prng } from "./helpers.js";

describe("readHead's field names", () => {
  it("each spelling of a name, answer after answer, is one lower-case field", () => {
    for (let round = 0; round < 3; round++) {
      const f = newFraming();
      const h = readHead(
        ["Set-Cookie", "a=1", "SET-COOKIE", "b=2", "set-cookie", "c=3", "Content-Length", "12", "X-Up", "1"],
        f,
      );
      assert.deepEqual(h, { "set-cookie": ["a=1", "b=2", "c=3"], "content-length": "12", "x-up": "1" });
      assert.equal(f.length, 12);
      assert.equal(f.lengths, 1);
    }
  });

  it("names beyond the cache's bound (1,024) are still lower-cased", () => {
    const raw: string[] = [];
    for (let i = 0; i < 3000; i++) raw.push(`X-Many-${i}`, String(i));
    const h = readHead(raw, newFraming());
    assert.equal(Object.keys(h).length, 3000);
    assert.equal(h["x-many-2999"], "2999");
    assert.ok(Object.keys(h).every((k) => k === k.toLowerCase()));
    const again = readHead(["X-MANY-2999", "x", "x-many-0", "y"], newFraming());
    assert.deepEqual(again, { "x-many-2999": "x", "x-many-0": "y" });
  });
});

describe("headEnd", () => {
  it("is buf.indexOf('\\r\\n\\r\\n') for generated heads, bodies and fragments", () => {
    const rnd = prng(18);
    const alphabet = [
      "\r",
      "\n",
      "\r\n",
      "\r\n\r\n",
      "\n\r\n",
      "\r\r\n\n",
      "a",
      "HTTP/1.1 200 OK",
      ": ",
      "x".repeat(40),
    ];
    let found = 0;
    for (let i = 0; i < 20_000; i++) {
      let s = "";
      const parts = Math.floor(rnd() * 12);
      for (let j = 0; j < parts; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      const buf = Buffer.from(s, "latin1");
      const want = buf.indexOf("\r\n\r\n");
      if (want >= 0) found++;
      assert.equal(headEnd(buf), want, JSON.stringify(s));
    }
    assert.ok(found > 1000 && found < 19_000, `both outcomes covered (${found} found)`);
  });
});
