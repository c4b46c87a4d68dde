/**
 * The pass-through request head is built in one pass as a flat list (issue 18); the object form
 * stays for backends that edit headers (hooks, `headers`, a middleware's overrides). The upstream
 * must receive the same bytes from both: here the two forms of 20,000 generated client header sets
 * (hop-by-hop and Connection-named fields, the gateway's own names sent by the client, repeated
 * fields, HTTP/2 pseudo-headers, integer-like names) go through the llhttp engine's serializer and
 * are compared head for head, refusals included. The end-to-end tests (proxy-http, lean-path,
 * h1-differential through both engines, test/hostile) check what an upstream actually receives.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { upstreamHeaderList, upstreamHeaderRecord, type Added } from "../src/backends/http-headers.js";
import { serialize } from "../src/http1/wire.js";
import { prng } from "./helpers.js";

const NAMES = [
  "host",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-request-id",
  "traceparent",
  "content-length",
  "content-type",
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "proxy-authorization",
  "expect",
  "accept",
  "user-agent",
  "cookie",
  "set-cookie",
  "x-custom",
  "x-other",
  "123",
  "7",
  ":authority",
  ":path",
  "__proto__",
];
const CONNECTION = ["keep-alive", "close", "x-custom", "x-request-id, x-other", "host", "x-forwarded-host, Close"];

function head(headers: unknown, body: Buffer | null): string {
  try {
    return serialize({ method: "POST", path: "/p?q=1", headers, body } as never, "up.example:81").head;
  } catch (e) {
    return `refused: ${(e as Error).name} ${(e as Error).message}`;
  }
}

describe("the upstream request head, list and object forms", () => {
  it("serialize to the same bytes for generated client headers and options", () => {
    const rnd = prng(18);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    let refused = 0;
    let listed = 0;
    for (let n = 0; n < 20000; n++) {
      const h: IncomingHttpHeaders = {};
      const count = Math.floor(rnd() * 10);
      for (let i = 0; i < count; i++) {
        const k = pick(NAMES);
        const v =
          k === "connection"
            ? pick(CONNECTION)
            : k === "content-length"
              ? pick(["0", "5", "12"])
              : k === "__proto__"
                ? "p" // an array would become the object form's prototype; node's parser never makes it an own key
                : k === "set-cookie" || rnd() < 0.05
                  ? ["a=1", "b=2"]
                  : rnd() < 0.03
                    ? "bad\r\nvalue"
                    : `v${i}`;
        // As an own property even for __proto__, the way a header table could hold it.
        Object.defineProperty(h, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      const ct = rnd() < 0.2 ? "application/json" : undefined;
      const a: Added = {
        host: rnd() < 0.5 ? "up.example:8080" : undefined,
        xForwardedFor: "203.0.113.9",
        xForwardedProto: rnd() < 0.5 ? "https" : "http",
        xForwardedHost: rnd() < 0.8 ? "gw.example" : undefined,
        trust: rnd() < 0.5,
        requestId: `id-${n}`,
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        contentLength: rnd() < 0.3 ? "12" : undefined,
        contentType: ct !== undefined && ct !== h["content-type"] ? ct : undefined,
      };
      const body = a.contentLength !== undefined ? Buffer.alloc(12) : null;
      const list = upstreamHeaderList(h, a);
      const record = upstreamHeaderRecord(h, a);
      const fromList = head(list, body);
      assert.equal(fromList, head(record, body), `headers ${JSON.stringify(h)}, added ${JSON.stringify(a)}`);
      if (fromList.startsWith("refused")) refused++;
      else listed++;
    }
    // Both outcomes were exercised, so neither side of the comparison is vacuous.
    assert.ok(refused > 100 && listed > 10000, `refused ${refused}, serialized ${listed}`);
  });

  it("puts the gateway's values where the client's were and drops what must not cross", () => {
    const h: IncomingHttpHeaders = {
      accept: "*/*",
      "x-request-id": "client-chosen",
      connection: "x-custom",
      "x-custom": "hop",
      "x-forwarded-host": "evil.example",
      "keep-alive": "timeout=5",
      host: "gw.example",
    };
    const a: Added = {
      host: "up.example",
      xForwardedFor: "127.0.0.1",
      xForwardedProto: "http",
      xForwardedHost: undefined,
      trust: false,
      requestId: "r1",
      traceparent: "tp",
      contentLength: undefined,
      contentType: undefined,
    };
    assert.deepEqual(upstreamHeaderList(h, a), [
      "accept",
      "*/*",
      "x-request-id",
      "r1",
      "host",
      "up.example",
      "x-forwarded-for",
      "127.0.0.1",
      "x-forwarded-proto",
      "http",
      "traceparent",
      "tp",
    ]);
  });
});
