/**
 * The canonical request path (pipeline/canonical-path.ts) as a pure function: what each spelling
 * becomes, what is refused, and the options. The data plane's use of it is covered over real
 * sockets in path-normalization.test.ts and test/hostile/path-encoding.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_PATH_NORMALIZATION,
  PathError,
  canonicalLiteral,
  canonicalPath,
  type PathNormalization,
} from "../src/pipeline/canonical-path.js";
import { pathPattern } from "../src/policy/rules.js";
import { prng } from "./helpers.js";

const opts = (o: Partial<PathNormalization> = {}): PathNormalization => ({ ...DEFAULT_PATH_NORMALIZATION, ...o });
const refused = (p: string, o: Partial<PathNormalization> = {}, why?: RegExp) =>
  assert.throws(
    () => canonicalPath(p, opts(o)),
    (e: unknown) => e instanceof PathError && (!why || why.test(e.message)),
    p,
  );

test("canonical paths come back unchanged (the fast path)", () => {
  for (const p of [
    "/",
    "/admin",
    "/fhir/Patient/123",
    "/a/b/",
    "/x-y_z~1.2/@:!$&'()*+,=",
    "/.well-known/x",
    "/a.b/c..d",
  ])
    assert.equal(canonicalPath(p), p);
});

test("unreserved escapes are decoded; other escapes keep their meaning with upper-case hex", () => {
  assert.equal(canonicalPath("/%61dmin"), "/admin");
  assert.equal(canonicalPath("/%61%64%6D%69%6e/%73ecret%2Etxt"), "/admin/secret.txt");
  assert.equal(canonicalPath("/a%7e%2d%5f"), "/a~-_");
  assert.equal(canonicalPath("/a%2a%3b%3F%23%25"), "/a%2A%3B%3F%23%25");
  assert.equal(canonicalPath("/%e2%9c%93"), "/%E2%9C%93");
  // Double encoding is one layer only: %252e is a literal "%2e", forwarded as such.
  assert.equal(canonicalPath("/%252e%252e/admin"), "/%252e%252e/admin");
  // Characters a client should have encoded are encoded.
  assert.equal(canonicalPath('/a"<>^`{|}b'), "/a%22%3C%3E%5E%60%7B%7C%7Db");
});

test("slashes are merged; a trailing slash is kept", () => {
  assert.equal(canonicalPath("//admin"), "/admin");
  assert.equal(canonicalPath("///a//b///c"), "/a/b/c");
  assert.equal(canonicalPath("/a//"), "/a/");
  assert.equal(canonicalPath("//"), "/");
});

test("dot segments are refused however they are spelled", () => {
  for (const p of [
    "/..",
    "/a/.",
    "/a/../b",
    "/./a",
    "/a/%2e%2e/b",
    "/a/%2E/b",
    "/a/.%2e",
    "/a/%2e./b",
    "/%2e",
    "/a/%c0%ae%c0%ae/b",
    "/a/%e0%80%ae/b",
  ])
    refused(p);
  for (const p of ["/a/%2e%2e%2fb", "/a/..%2fb", "/a%2f..%2fb"]) {
    refused(p); // encoded slash, by default
    refused(p, { encodedSlash: "decode" }, /dot segments/);
    refused(p, { encodedSlash: "keep" }, /dot segments/);
  }
  refused("/a/..;x/b", { semicolon: "strip" }, /dot segments/);
  refused("/a/..%5cb", { encodedSlash: "keep" }, /dot segments/);
});

test("invalid encodings, bad UTF-8, control characters, backslashes and fragments are refused", () => {
  for (const p of ["/%zz", "/a%2", "/a%", "/%g0"]) refused(p, {}, /percent-encoding/);
  for (const p of ["/%c0%af", "/%e0%80%af", "/%ff", "/%c3", "/%ed%a0%80", "/%f8%88%80%80%80"]) refused(p, {}, /UTF-8/);
  for (const p of ["/a%00", "/a%09b", "/a%0d%0a", "/a%7f", "/a%1b"]) refused(p, {}, /control/);
  for (const p of ["/a\\b", "/a\\..\\b"]) refused(p, {}, /'\\'/);
  refused("/a#b", {}, /#/);
  refused("/a\u00e9", {}, /non-ASCII/);
  refused("a/b", {}, /start with/);
});

test("encoded slashes: refused, decoded into separators, or kept", () => {
  refused("/a%2Fb");
  refused("/a%5cb");
  assert.equal(canonicalPath("/a%2fb//c%2F", opts({ encodedSlash: "decode" })), "/a/b/c/");
  refused("/a%5cb", { encodedSlash: "decode" });
  assert.equal(canonicalPath("/a%2fb%5c", opts({ encodedSlash: "keep" })), "/a%2Fb%5C");
});

test(";params: refused, stripped from every segment, or kept", () => {
  refused("/admin;x", {}, /';'/);
  assert.equal(canonicalPath("/admin;x/secret.txt;jsessionid=1", opts({ semicolon: "strip" })), "/admin/secret.txt");
  assert.equal(canonicalPath("/a/;x/b", opts({ semicolon: "strip" })), "/a/b");
  assert.equal(canonicalPath("/a;b=c", opts({ semicolon: "keep" })), "/a;b=c");
  // An encoded ';' is data, never a parameter delimiter.
  assert.equal(canonicalPath("/a%3bb"), "/a%3Bb");
});

test("canonicalisation is idempotent", () => {
  for (const p of ["//a/%61/%2a//", "/%e2%9c%93/x y", "/a%252e"]) {
    const once = canonicalPath(p.replace(" ", "%20"));
    assert.equal(canonicalPath(once), once);
  }
});

test("configured literals and path patterns are matched in canonical form", () => {
  assert.equal(canonicalLiteral("/é/%61dmin/a b/%2f"), "/%C3%A9/admin/a%20b/%2F");
  assert.equal(canonicalLiteral("/plain"), "/plain");
  const p = pathPattern("/Bücher/{id}");
  assert.ok(p.test(canonicalPath("/B%C3%BCcher/1"), false));
  assert.ok(p.test(canonicalPath("/B%c3%bccher/1"), false));
  assert.ok(!p.test("/b%C3%BCcher/1", false));
  assert.ok(p.test("/b%C3%BCcher/1", true), "case-insensitive matching");
  assert.ok(pathPattern("/%61dmin").test("/admin", false));
});

test("property: whatever comes in, what comes out is stable and decodes to no dot segment or separator", () => {
  // A seeded generator (mulberry32) over the pieces path tricks are made of.
  const rand = prng(20261205);
  const atoms = [
    "/",
    "//",
    ".",
    "..",
    "a",
    "B",
    "%2e",
    "%2E",
    "%2f",
    "%5c",
    "%25",
    "%c0%ae",
    "%61",
    ";",
    ";x",
    "\\",
    "%3b",
    "%20",
    "~",
    "%e2%9c%93",
  ];
  let accepted = 0;
  for (let n = 0; n < 20_000; n++) {
    let p = "/";
    const len = 1 + Math.floor(rand() * 8);
    for (let i = 0; i < len; i++) p += atoms[Math.floor(rand() * atoms.length)];
    for (const o of [
      opts(),
      opts({ encodedSlash: "decode", semicolon: "strip" }),
      opts({ encodedSlash: "keep", semicolon: "keep" }),
    ]) {
      let c: string;
      try {
        c = canonicalPath(p, o);
      } catch (e) {
        assert.ok(e instanceof PathError, `${p}: ${String(e)}`);
        continue;
      }
      accepted++;
      assert.equal(canonicalPath(c, o), c, `${p} → ${c} is a fixed point`);
      assert.ok(!c.includes("//"), `${p} → ${c}`);
      // An upstream that decodes once (and treats %2F and %5C as separators) finds no dot segment.
      const decoded = decodeURIComponent(c).split(/[/\\]/);
      assert.ok(!decoded.includes(".") && !decoded.includes(".."), `${p} → ${c}`);
      if (o.encodedSlash !== "keep") assert.ok(!/%2F|%5C/i.test(c), `${p} → ${c}`);
      if (o.semicolon !== "keep") assert.ok(!c.includes(";"), `${p} → ${c}`);
    }
  }
  assert.ok(accepted > 1000, `${accepted} accepted`);
});
