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

  it("one connection's answers with other names at the same places keep their own names", () => {
    // One Framing per connection: it remembers the last answer's names by position.
    const f = newFraming();
    const answers: [string[], Record<string, string | string[]>][] = [
      [["Content-Length", "3", "Date", "d"], { "content-length": "3", date: "d" }],
      [["Content-Length", "4", "Date", "e"], { "content-length": "4", date: "e" }],
      [["X-Length", "5", "content-length", "6"], { "x-length": "5", "content-length": "6" }],
      [["Content-Length", "7"], { "content-length": "7" }],
      [["Date", "a", "DATE", "b", "Date", "c"], { date: ["a", "b", "c"] }],
      [
        ["Transfer-Encoding", "chunked", "Keep-Alive", "timeout=5"],
        { "transfer-encoding": "chunked", "keep-alive": "timeout=5" },
      ],
    ];
    for (const [raw, want] of answers) assert.deepEqual(readHead(raw, f), want, JSON.stringify(raw));
    assert.equal(f.chunked, true);
    assert.equal(f.keepAlive, "timeout=5");
    assert.equal(f.lengths, 0, "the framing facts are the last answer's only");
    const many: string[] = [];
    for (let i = 0; i < 100; i++) many.push(`X-F-${i % 70}`, String(i));
    for (let round = 0; round < 2; round++) {
      const h = readHead(many, f);
      assert.equal(Object.keys(h).length, 70);
      assert.deepEqual(h["x-f-5"], ["5", "75"]);
      assert.equal(h["x-f-69"], "69");
    }
  });

  it("a content-length is read as a decimal number, or -1 when it is not one", () => {
    const cases: [string, number][] = [
      ["0", 0],
      ["1024", 1024],
      ["007", 7],
      ["", -1],
      ["1e3", -1],
      [" 1", -1],
      ["-1", -1],
      ["+1", -1],
      ["0x10", -1],
      ["123456789012345", 123456789012345],
      ["9007199254740993", Number("9007199254740993")],
      ["99999999999999999999", 1e20],
    ];
    for (const [v, want] of cases) {
      const f = newFraming();
      readHead(["content-length", v], f);
      assert.equal(f.length, want, JSON.stringify(v));
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

  it("looks only within [from, to) of a larger buffer (a read in the connection's read buffer)", () => {
    const rnd = prng(19);
    const alphabet = ["\r", "\n", "\r\n", "\r\n\r\n", "\n\r\n", "a", ": ", "x".repeat(30)];
    const gen = (parts: number) => {
      let s = "";
      for (let j = 0; j < parts; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      return s;
    };
    let found = 0;
    for (let i = 0; i < 20_000; i++) {
      // Stale bytes before and after the read, often with a CRLF CRLF of their own or half of one.
      const before = gen(Math.floor(rnd() * 4));
      const read = gen(Math.floor(rnd() * 10));
      const stale = gen(Math.floor(rnd() * 4));
      const buf = Buffer.from(before + read + stale, "latin1");
      const from = Buffer.byteLength(before, "latin1");
      const to = from + Buffer.byteLength(read, "latin1");
      const inRead = Buffer.from(read, "latin1").indexOf("\r\n\r\n");
      const want = inRead < 0 ? -1 : from + inRead;
      if (want >= 0) found++;
      assert.equal(headEnd(buf, from, to), want, JSON.stringify([before, read, stale]));
    }
    assert.ok(found > 1000 && found < 19_000, `both outcomes covered (${found} found)`);
  });
});
