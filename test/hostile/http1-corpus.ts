/**
 * A generated corpus of raw HTTP/1.1 exchanges for the server-lane differential: seeded (the same
 * seed gives the same bytes), a few hundred cases across valid lane requests with random header
 * sets and path spellings, heads split at random byte boundaries, pipelines that hand the connection
 * from the lane to node:http mid-way, smuggling attempts, oversize heads, half-closes and clients
 * that leave mid-answer (those fixed ones in http1-attacks.ts). Every case targets the routes of
 * http1-rig.ts.
 */
import { prng } from "../../dataplane/test/helpers.js";
import type { Case } from "./http1-exchange.js";
import { edgeCases, fixedCases, methodAndHostCases, timingCases } from "./http1-attacks.js";
import { HOST, b, request, utf8 } from "./http1-bytes.js";

class Gen {
  constructor(readonly r: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.r() * (hi - lo + 1));
  }
  pick<T>(a: readonly T[]): T {
    return a[Math.floor(this.r() * a.length)]!;
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
}

const PREFIXES = ["/lane", "/lane", "/lane", "/mw", "/healthz", "/nowhere", "/"] as const;
const KEYS = [
  "k-chunked",
  "k-204",
  "k-304",
  "k-large",
  "k-slow",
  "k-close",
  "k-many",
  "k-trailers",
  "k-103",
  "a",
  "b",
] as const;
const SEGMENTS = [
  "a",
  "k-chunked",
  "admin",
  "private",
  "..",
  ".",
  "%2e%2e",
  "%2E%2e",
  ".%2e",
  "%2f",
  "%2F",
  "%252e%252e",
  "%252f",
  "",
  ";x=1",
  "a;b",
  "%00",
  "%zz",
  "%",
  "%C3%A9",
  utf8("é"),
  utf8("日本"),
  "%u002e",
  "\\",
  "..%5c",
  "~",
  "a b",
  "a%20b",
  "'\"<>",
  "k-304",
] as const;

/** A random path: a prefix, some segments (encoded tricks included), maybe a key, maybe a query. */
function path(g: Gen): string {
  const prefix = g.pick(PREFIXES);
  if (prefix === "/healthz" && g.chance(0.5)) return "/healthz";
  const segs: string[] = [];
  for (let i = g.int(0, 4); i > 0; i--) segs.push(g.pick(SEGMENTS));
  if (g.chance(0.5)) segs.push(g.pick(KEYS));
  if (g.chance(0.05)) segs.push("x".repeat(g.pick([200, 2000, 8000])));
  let p = (prefix === "/" ? "" : prefix) + (g.chance(0.1) ? "//" : "/") + segs.join(g.chance(0.1) ? "//" : "/");
  if (g.chance(0.2)) p += "?" + g.pick(["q=1", "a=%2e%2e/admin", "x=" + utf8("ü"), "", "a=1&a=2", "#frag"]);
  return p;
}

const NAMES = [
  "accept",
  "accept-encoding",
  "accept-language",
  "user-agent",
  "cache-control",
  "cookie",
  "if-none-match",
  "x-request-id",
  "x-custom",
  "x-forwarded-for",
  "forwarded",
  "authorization",
  "pragma",
  "range",
  "referer",
  "te",
  "via",
] as const;
const VALUES = ["*/*", "gzip, br", "en", "curl/8", "no-cache", "a=b; c=d", '"v1"', "abc-123", "1.2.3.4", "bytes=0-1"];

/** `n` random header lines (names may repeat; some custom names are numbered). */
function headerLines(g: Gen, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = g.chance(0.3) ? `x-h${g.int(0, 500)}` : g.pick(NAMES);
    const value = name === "x-request-id" ? g.pick(["req-1", "bad id with spaces", "a".repeat(200)]) : g.pick(VALUES);
    out.push(`${g.chance(0.2) ? name.toUpperCase() : name}: ${value}`);
  }
  return out;
}

/** A valid GET/HEAD on a random path with 0..100 random header lines. */
function validCase(g: Gen, i: number): Case {
  const method = g.pick(["GET", "GET", "HEAD"]);
  const n = g.pick([0, 1, 5, 20, 32, 33, 34, 60, 100]);
  const lines = [HOST, ...headerLines(g, n)];
  return { name: `valid#${i} ${method} ${n}h`, chunks: [b(request(method, path(g), lines))], methods: [method] };
}

/** A valid request cut at random byte boundaries with pauses between the pieces. */
function splitCase(g: Gen, i: number): Case {
  const method = g.pick(["GET", "HEAD"]);
  const bytes = b(request(method, path(g), [HOST, ...headerLines(g, g.int(0, 40))]));
  const cuts = [...new Set(Array.from({ length: g.int(1, 6) }, () => g.int(1, bytes.length - 1)))].sort(
    (x, y) => x - y,
  );
  const chunks: (Buffer | number)[] = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    chunks.push(bytes.subarray(at, c), g.int(1, 25));
    at = c;
  }
  return { name: `split#${i} at ${cuts.join(",")}`, chunks, methods: [method] };
}

/** One request of a pipeline: a lane GET/HEAD or something the lane must hand to node:http. */
function pipelineItem(g: Gen): { text: string; method: string; ends?: boolean } {
  // Expect anywhere in a pipeline: node:http on its own writes the 100 of a request queued behind
  // another answer whenever it reads it, sometimes between that answer's head and body; the data
  // plane writes it at the request's turn (runtime/one-in-flight.ts), as the lane does.
  const kind = g.pick(["lane", "lane", "lane", "head", "post", "chunked", "upgrade", "mw", "mgmt", "404", "expect"]);
  switch (kind) {
    case "head":
      return { text: request("HEAD", `/lane/${g.pick(KEYS)}`, [HOST]), method: "HEAD" };
    case "post": {
      const body = "p".repeat(g.int(0, 300));
      return {
        text: request("POST", "/lane/a", [HOST, `Content-Length: ${body.length}`], "HTTP/1.1", body),
        method: "POST",
      };
    }
    case "chunked":
      return {
        text: request("POST", "/lane/a", [HOST, "Transfer-Encoding: chunked"], "HTTP/1.1", "5\r\nhello\r\n0\r\n\r\n"),
        method: "POST",
      };
    case "expect":
      return {
        text: request("POST", "/lane/a", [HOST, "Content-Length: 4", "Expect: 100-continue"], "HTTP/1.1", "abcd"),
        method: "POST",
      };
    case "upgrade":
      // An upgrade ends what can be pipelined behind it: a correct server reads nothing after it as HTTP.
      return {
        text: request("GET", "/lane/a", [HOST, "Connection: Upgrade", "Upgrade: websocket"]),
        method: "GET",
        ends: true,
      };
    case "mw":
      return {
        text: request("GET", `/mw/${g.pick(["a", "admin", "private", "%61dmin", "k-chunked"])}`, [HOST]),
        method: "GET",
      };
    case "mgmt":
      return { text: request("GET", "/healthz", [HOST]), method: "GET" };
    case "404":
      return { text: request("GET", "/nowhere", [HOST]), method: "GET" };
    default:
      return { text: request("GET", `/lane/${g.pick(KEYS)}`, [HOST, ...headerLines(g, g.int(0, 5))]), method: "GET" };
  }
}

/** 2..6 pipelined requests in one write or a few. */
function pipelineCase(g: Gen, i: number): Case {
  const items: { text: string; method: string; ends?: boolean }[] = [];
  for (let n = g.int(2, 6); n > 0; n--) {
    const it = pipelineItem(g);
    items.push(it);
    if (it.ends) break;
  }
  const all = b(items.map((x) => x.text).join(""));
  const chunks: (Buffer | number)[] = g.chance(0.5) ? [all] : items.flatMap((x) => [b(x.text), g.int(0, 10)]);
  const kinds = items.map((x) => x.text.slice(0, x.text.indexOf(" ", 5)));
  return { name: `pipeline#${i} ${kinds.join(" | ")}`, chunks, methods: items.map((x) => x.method) };
}

/** The whole corpus for `seed`: about 350 cases. */
export function corpus(seed: number): Case[] {
  const g = new Gen(prng(seed));
  const cases: Case[] = [];
  for (let i = 0; i < 110; i++) cases.push(validCase(g, i));
  for (let i = 0; i < 40; i++) cases.push(splitCase(g, i));
  for (let i = 0; i < 60; i++) cases.push(pipelineCase(g, i));
  cases.push(...fixedCases(), ...methodAndHostCases(), ...timingCases(), ...edgeCases((lo, hi) => g.int(lo, hi)));
  return cases;
}
