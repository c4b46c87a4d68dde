/**
 * readHead (http1/response-head.ts) keeps lower-cased names from one answer to the next (issue 18):
 * every spelling of a name still lands on the same lower-case key, a repeated field still becomes
 * an array, and names past the cache's bound are lower-cased all the same.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { newFraming, readHead } from "../src/http1/response-head.js";

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
