/**
 * The fixed part of the HTTP/1.1 server-lane corpus: smuggling attempts, obsolete and broken
 * syntax, odd targets, versions, methods and Hosts, head sizes around the 16 KiB limit, answers of
 * every upstream kind, timing against the head and keep-alive deadlines, half-closes and clients
 * that leave mid-answer.
 */
import type { Case } from "./http1-exchange.js";
import { b, HOST, NEXT, request, sizedHead, utf8 } from "./http1-bytes.js";

/** Fixed attacks: smuggling, obsolete and broken syntax, odd targets and versions, sizes. */
export function fixedCases(): Case[] {
  const one = (name: string, text: string, methods = ["GET"]): Case => ({ name, chunks: [b(text)], methods });
  const L = "/lane/a";
  return [
    one(
      "CL+TE",
      request("POST", L, [HOST, "Content-Length: 4", "Transfer-Encoding: chunked"], "HTTP/1.1", "0\r\n\r\n") + NEXT,
      ["POST", "GET"],
    ),
    one(
      "TE+CL",
      request("POST", L, [HOST, "Transfer-Encoding: chunked", "Content-Length: 30"], "HTTP/1.1", "0\r\n\r\n") + NEXT,
      ["POST", "GET"],
    ),
    one(
      "GET CL+TE",
      request("GET", L, [HOST, "Content-Length: 5", "Transfer-Encoding: chunked"], "HTTP/1.1", "0\r\n\r\n") + NEXT,
      ["GET", "GET"],
    ),
    one(
      "dup CL equal",
      request("POST", L, [HOST, "Content-Length: 3", "Content-Length: 3"], "HTTP/1.1", "abc") + NEXT,
      ["POST", "GET"],
    ),
    one(
      "dup CL differ",
      request("POST", L, [HOST, "Content-Length: 3", "Content-Length: 40"], "HTTP/1.1", "abc") + NEXT,
      ["POST", "GET"],
    ),
    one("CL list", request("POST", L, [HOST, "Content-Length: 3, 3"], "HTTP/1.1", "abc") + NEXT, ["POST", "GET"]),
    one("CL plus sign", request("POST", L, [HOST, "Content-Length: +3"], "HTTP/1.1", "abc") + NEXT, ["POST", "GET"]),
    one("CL negative", request("POST", L, [HOST, "Content-Length: -1"], "HTTP/1.1") + NEXT, ["POST", "GET"]),
    one("CL hex", request("POST", L, [HOST, "Content-Length: 0x3"], "HTTP/1.1", "abc") + NEXT, ["POST", "GET"]),
    one("CL huge", request("POST", L, [HOST, "Content-Length: 99999999999999999999"], "HTTP/1.1", "abc"), ["POST"]),
    one(
      "GET with CL body (lane must not treat the body as a request)",
      request("GET", L, [HOST, "Content-Length: " + NEXT.length], "HTTP/1.1", NEXT),
      ["GET"],
    ),
    one("HEAD with CL body", request("HEAD", L, [HOST, "Content-Length: " + NEXT.length], "HTTP/1.1", NEXT), ["HEAD"]),
    one(
      "GET chunked body",
      request(
        "GET",
        L,
        [HOST, "Transfer-Encoding: chunked"],
        "HTTP/1.1",
        `${NEXT.length.toString(16)}\r\n${NEXT}\r\n0\r\n\r\n`,
      ) + NEXT,
      ["GET", "GET"],
    ),
    one("GET CL 0", request("GET", L, [HOST, "Content-Length: 0"]) + NEXT, ["GET", "GET"]),
    ...[
      "xchunked",
      " chunked",
      "chunked, identity",
      "identity, chunked",
      "chunked ",
      "\tchunked",
      "\x0bchunked",
      "CHUNKED",
      "chunk",
      '"chunked"',
      "chunked;q=1",
      "gzip",
    ].map((te) =>
      one(
        `TE ${JSON.stringify(te)}`,
        request("POST", L, [HOST, `Transfer-Encoding: ${te}`], "HTTP/1.1", "0\r\n\r\n") + NEXT,
        ["POST", "GET"],
      ),
    ),
    one(
      "TE twice",
      request("POST", L, [HOST, "Transfer-Encoding: chunked", "Transfer-Encoding: identity"], "HTTP/1.1", "0\r\n\r\n") +
        NEXT,
      ["POST", "GET"],
    ),
    one(
      "TE space before colon",
      request("POST", L, [HOST, "Transfer-Encoding : chunked", "Content-Length: 5"], "HTTP/1.1", "0\r\n\r\n") + NEXT,
      ["POST", "GET"],
    ),
    one("TE on HTTP/1.0", request("POST", L, [HOST, "Transfer-Encoding: chunked"], "HTTP/1.0", "0\r\n\r\n"), ["POST"]),
    one(
      "bad chunk size",
      request("POST", L, [HOST, "Transfer-Encoding: chunked"], "HTTP/1.1", "zz\r\nhello\r\n0\r\n\r\n") + NEXT,
      ["POST", "GET"],
    ),
    one(
      "chunk ext",
      request("POST", L, [HOST, "Transfer-Encoding: chunked"], "HTTP/1.1", "5;a=b\r\nhello\r\n0\r\n\r\n") + NEXT,
      ["POST", "GET"],
    ),
    one(
      "chunk bare LF",
      request("POST", L, [HOST, "Transfer-Encoding: chunked"], "HTTP/1.1", "5\nhello\n0\n\n") + NEXT,
      ["POST", "GET"],
    ),
    one("obs-fold", `GET ${L} HTTP/1.1\r\n${HOST}\r\nX-A: a\r\n b\r\n\r\n` + NEXT, ["GET", "GET"]),
    one(
      "obs-fold of TE",
      `POST ${L} HTTP/1.1\r\n${HOST}\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n` +
        NEXT,
      ["POST", "GET"],
    ),
    one("bare LF head", `GET ${L} HTTP/1.1\n${HOST}\n\n` + NEXT),
    one("bare LF mixed", `GET ${L} HTTP/1.1\r\n${HOST}\nX-A: 1\r\n\r\n` + NEXT, ["GET", "GET"]),
    one("bare CR", `GET ${L} HTTP/1.1\r${HOST}\r\n\r\n` + NEXT),
    one("NUL in value", request("GET", L, [HOST, "X-A: a\x00b"]) + NEXT),
    one("NUL in path", request("GET", "/lane/a\x00b", [HOST]) + NEXT),
    one("NUL in name", request("GET", L, [HOST, "X-\x00A: a"]) + NEXT),
    one("control char in value", request("GET", L, [HOST, "X-A: a\x01b"]) + NEXT),
    one("DEL in value", request("GET", L, [HOST, "X-A: a\x7fb"]) + NEXT),
    one("ESC in value", request("GET", L, [HOST, "X-A: \x1b[31mred"]) + NEXT),
    one("tab in value", request("GET", L, [HOST, "X-A: a\tb"]) + NEXT, ["GET", "GET"]),
    one("high bytes in value", request("GET", L, [HOST, "X-A: " + utf8("héllo")]) + NEXT, ["GET", "GET"]),
    one("space before colon", request("GET", L, [HOST, "X-A : a"]) + NEXT),
    one("space before colon Host", request("GET", L, ["Host : dp.test"]) + NEXT),
    one("no colon", request("GET", L, [HOST, "X-A a"]) + NEXT),
    one("empty name", request("GET", L, [HOST, ": a"]) + NEXT),
    one("leading space first header", `GET ${L} HTTP/1.1\r\n ${HOST}\r\n\r\n` + NEXT),
    one("no Host on 1.1", request("GET", L, []) + NEXT, ["GET", "GET"]),
    one("two Hosts", request("GET", L, [HOST, "Host: other.test"]) + NEXT),
    one("absolute-form lane", request("GET", "http://dp.test/lane/a", [HOST]) + NEXT, ["GET", "GET"]),
    one("absolute-form to mw admin", request("GET", "http://dp.test/mw/admin", [HOST]) + NEXT, ["GET", "GET"]),
    one("absolute-form other host", request("GET", "http://evil.test:1/lane/k-chunked", [HOST]), ["GET"]),
    one("absolute-form https", request("GET", "https://dp.test/lane/a", [HOST]), ["GET"]),
    one("asterisk-form GET", request("GET", "*", [HOST]) + NEXT),
    one("OPTIONS *", request("OPTIONS", "*", [HOST]) + NEXT, ["OPTIONS", "GET"]),
    one("authority-form GET", request("GET", "dp.test:80", [HOST]) + NEXT),
    one("CONNECT", request("CONNECT", "127.0.0.1:1", [HOST]) + NEXT),
    one("CONNECT lane path", request("CONNECT", "/lane/a", [HOST]) + NEXT),
    one("HTTP/0.9", `GET ${L}\r\n`),
    one("HTTP/0.9 then 1.1", `GET ${L}\r\n` + NEXT),
    one("HTTP/1.0 no keep-alive", request("GET", L, [HOST], "HTTP/1.0") + NEXT),
    one("HTTP/1.0 keep-alive", request("GET", L, [HOST, "Connection: keep-alive"], "HTTP/1.0") + NEXT, ["GET", "GET"]),
    one(
      "HTTP/1.0 keep-alive chunked upstream",
      request("GET", "/lane/k-chunked", [HOST, "Connection: keep-alive"], "HTTP/1.0") + NEXT,
      ["GET", "GET"],
    ),
    one("HTTP/1.0 no Host", request("GET", L, [], "HTTP/1.0")),
    one("HTTP/1.1 Connection: close", request("GET", L, [HOST, "Connection: close"]) + NEXT),
    one("Connection: close, chunked upstream", request("GET", "/lane/k-chunked", [HOST, "Connection: close"])),
    one(
      "Connection names a header",
      request("GET", L, [HOST, "Connection: keep-alive, X-Secret", "X-Secret: s"]) + NEXT,
      ["GET", "GET"],
    ),
    one("Connection names Host", request("GET", L, [HOST, "Connection: host"]) + NEXT, ["GET", "GET"]),
    one("HTTP/2.0 line", request("GET", L, [HOST], "HTTP/2.0")),
    one("HTTP/1.2 line", request("GET", L, [HOST], "HTTP/1.2") + NEXT),
    one("HTTP/1.10 line", request("GET", L, [HOST], "HTTP/1.10")),
    one("lowercase version", request("GET", L, [HOST], "http/1.1")),
    one("lowercase method", request("get", L, [HOST]) + NEXT),
    one("unknown method", request("FOO", L, [HOST]) + NEXT, ["FOO", "GET"]),
    one("PURGE", request("PURGE", L, [HOST]) + NEXT, ["PURGE", "GET"]),
    one("double space in line", `GET  ${L} HTTP/1.1\r\n${HOST}\r\n\r\n` + NEXT),
    one("tab in line", `GET\t${L} HTTP/1.1\r\n${HOST}\r\n\r\n` + NEXT),
    one("trailing space in line", `GET ${L} HTTP/1.1 \r\n${HOST}\r\n\r\n` + NEXT),
    one("leading CRLFs", `\r\n\r\n` + request("GET", L, [HOST]) + NEXT, ["GET", "GET"]),
    one("CRLFs between pipelined", request("GET", L, [HOST]) + "\r\n" + NEXT, ["GET", "GET"]),
    one("fragment in target", request("GET", "/lane/a#frag", [HOST]) + NEXT, ["GET", "GET"]),
    one("empty target", `GET  HTTP/1.1\r\n${HOST}\r\n\r\n` + NEXT),
    one("relative target", request("GET", "lane/a", [HOST]) + NEXT),
    one("Expect 100-continue on GET", request("GET", L, [HOST, "Expect: 100-continue"]) + NEXT, ["GET", "GET"]),
    one("Expect unknown", request("GET", L, [HOST, "Expect: foo"]) + NEXT, ["GET", "GET"]),
    one(
      "Upgrade h2c",
      request("GET", L, [
        HOST,
        "Connection: Upgrade, HTTP2-Settings",
        "Upgrade: h2c",
        "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
      ]) + NEXT,
      ["GET", "GET"],
    ),
    one("Upgrade without Connection", request("GET", L, [HOST, "Upgrade: websocket"]) + NEXT, ["GET", "GET"]),
    one("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    one("x-request-id supplied", request("GET", L, [HOST, "X-Request-Id: client-chosen-1"]) + NEXT, ["GET", "GET"]),
    one("two x-request-ids", request("GET", L, [HOST, "X-Request-Id: a", "X-Request-Id: b"]) + NEXT, ["GET", "GET"]),
    one("Range on lane", request("GET", "/lane/k-large", [HOST, "Range: bytes=0-9"]) + NEXT, ["GET", "GET"]),
    one("If-None-Match 304", request("GET", "/lane/k-304", [HOST, 'If-None-Match: "v1"']) + NEXT, ["GET", "GET"]),
    one("HEAD large", request("HEAD", "/lane/k-large", [HOST]) + NEXT, ["HEAD", "GET"]),
    one("HEAD chunked", request("HEAD", "/lane/k-chunked", [HOST]) + NEXT, ["HEAD", "GET"]),
    one("HEAD 204", request("HEAD", "/lane/k-204", [HOST]) + NEXT, ["HEAD", "GET"]),
    ...["k-close", "k-many", "k-trailers", "k-103"].flatMap((k) => [
      one(`upstream ${k} then pipelined`, request("GET", `/lane/${k}`, [HOST]) + NEXT, ["GET", "GET"]),
      one(`upstream ${k} on HTTP/1.0`, request("GET", `/lane/${k}`, [HOST], "HTTP/1.0"), ["GET"]),
      one(`upstream ${k} HEAD`, request("HEAD", `/lane/${k}`, [HOST]) + NEXT, ["HEAD", "GET"]),
    ]),
    one("TE: trailers from the client", request("GET", "/lane/k-trailers", [HOST, "TE: trailers"]) + NEXT, [
      "GET",
      "GET",
    ]),
    one("slow then pipelined", request("GET", "/lane/k-slow", [HOST]) + NEXT, ["GET", "GET"]),
    one("mw admin encoded", request("GET", "/mw/%61dmin", [HOST]) + NEXT, ["GET", "GET"]),
    one("mw admin dot-segment", request("GET", "/mw/a/../admin", [HOST]) + NEXT, ["GET", "GET"]),
    one("mw admin via lane ..", request("GET", "/lane/../mw/admin", [HOST]) + NEXT, ["GET", "GET"]),
    one("mw admin via lane %2e%2e", request("GET", "/lane/%2e%2e/mw/admin", [HOST]) + NEXT, ["GET", "GET"]),
    one("mw via //", request("GET", "//mw/admin", [HOST]) + NEXT, ["GET", "GET"]),
    one("lane ; admin", request("GET", "/lane;/../mw/admin", [HOST]) + NEXT, ["GET", "GET"]),
    one("mw private double-encoded", request("GET", "/mw/%2570rivate", [HOST]) + NEXT, ["GET", "GET"]),
    one("case /LANE", request("GET", "/LANE/a", [HOST]) + NEXT, ["GET", "GET"]),
    one("very long path 8k", request("GET", "/lane/" + "a".repeat(8000), [HOST]) + NEXT, ["GET", "GET"]),
    ...[-1, 0, 1].map((d) => one(`head 16 KiB ${d >= 0 ? "+" : ""}${d}`, sizedHead(16384 + d) + NEXT, ["GET", "GET"])),
    ...[-1, 0, 1].map((d) => ({
      name: `head 16 KiB ${d >= 0 ? "+" : ""}${d} in 1 KiB pieces`,
      chunks: [...b(sizedHead(16384 + d) + NEXT)].reduce<(Buffer | number)[]>((acc, _, i, all) => {
        if (i % 1024 === 0) acc.push(Buffer.from(all.slice(i, i + 1024)), 2);
        return acc;
      }, []),
      methods: ["GET", "GET"],
    })),
    one("head 80 KiB", sizedHead(81920) + NEXT, ["GET", "GET"]),
    one("150 header lines", request("GET", L, [HOST, ...Array.from({ length: 150 }, (_, i) => `X-N${i}: v`)]) + NEXT, [
      "GET",
      "GET",
    ]),
    one("2100 header lines", request("GET", L, [HOST, ...Array.from({ length: 2100 }, (_, i) => `X${i}: v`)]) + NEXT, [
      "GET",
      "GET",
    ]),
    one(
      "1 MB head of whitespace",
      request("GET", L, [HOST, ...Array.from({ length: 1000 }, () => `a:${" ".repeat(1000)}v`)]) + NEXT,
      ["GET", "GET"],
    ),
    one("2100 header lines alone", request("GET", L, [HOST, ...Array.from({ length: 2100 }, (_, i) => `X${i}: v`)])),
    one("500 cookies", request("GET", L, [HOST, ...Array.from({ length: 500 }, (_, i) => `Cookie: c${i}=v`)]) + NEXT, [
      "GET",
      "GET",
    ]),
    one("empty header value", request("GET", L, [HOST, "X-A:"]) + NEXT, ["GET", "GET"]),
    one("garbage", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
  ];
}

/**
 * Timing against the head and keep-alive deadlines (client_header_timeout_ms is 2 s in the rig;
 * every pause is well away from it, so the coarse clock the lane keeps cannot decide the case).
 */
export function timingCases(): Case[] {
  const get = (p: string) => b(request("GET", p, [HOST]));
  return [
    { name: "pause 1 s before the first byte", chunks: [1000, get("/lane/a")], methods: ["GET"] },
    { name: "silent 3 s before the first byte", chunks: [3000], methods: ["GET"] },
    {
      name: "head over 1 s in two pieces",
      chunks: [b("GET /lane/a HTTP/1.1\r\nHo"), 1000, b("st: dp.test\r\n\r\n")],
      methods: ["GET"],
    },
    {
      name: "head over 3 s, a byte now and then",
      chunks: [b("GET /lane/a HTTP/1.1\r\n"), ...Array.from({ length: 6 }, () => [500, b("X")]).flat()],
      methods: ["GET"],
    },
    {
      name: "second request after 2.5 s idle",
      chunks: [get("/lane/a"), 2500, get("/lane/k-chunked")],
      methods: ["GET", "GET"],
    },
    {
      name: "second head over 3 s",
      chunks: [
        get("/lane/a"),
        100,
        b("GET /lane/a HTTP/1.1\r\n"),
        ...Array.from({ length: 6 }, () => [500, b("X")]).flat(),
      ],
      methods: ["GET", "GET"],
    },
    {
      // The second head starts in the same read as the first, whole one: its deadline must still run.
      name: "a whole head and the start of the next in one read, the rest over 3 s",
      chunks: [
        b(request("GET", "/lane/a", [HOST]) + "GET /lane/a HTTP/1.1\r\n"),
        ...Array.from({ length: 6 }, () => [500, b("X")]).flat(),
      ],
      methods: ["GET", "GET"],
    },
    {
      name: "a whole head and the start of the next in one read, then silence",
      chunks: [b(request("GET", "/lane/k-slow", [HOST]) + "GET /lane/a HTTP/1.1\r\nHo"), 3000],
      methods: ["GET", "GET"],
    },
    {
      name: "lane GET, then a POST whose body comes later",
      chunks: [
        get("/lane/a"),
        b("POST /lane/a HTTP/1.1\r\nHost: dp.test\r\nContent-Length: 10\r\n\r\nhello"),
        300,
        b("world"),
        get("/lane/k-chunked"),
      ],
      methods: ["GET", "POST", "GET"],
    },
  ];
}

/** Methods without a body on the lane's route, and a few odd Host headers. */
export function methodAndHostCases(): Case[] {
  const one = (name: string, text: string, methods: string[]): Case => ({
    name,
    chunks: [b(text + NEXT)],
    methods: [...methods, "GET"],
  });
  return [
    ...["OPTIONS", "DELETE", "TRACE", "PUT", "POST", "PATCH", "PROPFIND"].map((m) =>
      one(`${m} without a body`, request(m, "/lane/a", [HOST]), [m]),
    ),
    one("Host empty", request("GET", "/lane/a", ["Host:"]), ["GET"]),
    one("Host with a space", request("GET", "/lane/a", ["Host: dp test"]), ["GET"]),
    one("Host with a bad port", request("GET", "/lane/a", ["Host: dp.test:99999"]), ["GET"]),
    one("Host with userinfo", request("GET", "/lane/a", ["Host: user@dp.test"]), ["GET"]),
    one("Connection: keep-alive, close", request("GET", "/lane/a", [HOST, "Connection: keep-alive, close"]), ["GET"]),
    one("Content-Length: 00", request("GET", "/lane/a", [HOST, "Content-Length: 00"]), ["GET"]),
    one("Content-Length 0 twice", request("GET", "/lane/a", [HOST, "Content-Length: 0", "Content-Length: 0"]), ["GET"]),
    one("Content-Length: 0 on HEAD", request("HEAD", "/lane/k-large", [HOST, "Content-Length: 0"]), ["HEAD"]),
  ];
}

/** Half-closes and clients that leave mid-answer. */
export function edgeCases(int: (lo: number, hi: number) => number): Case[] {
  const out: Case[] = [];
  for (const p of ["/lane/a", "/lane/k-chunked", "/lane/k-large", "/lane/k-slow", "/mw/a", "/healthz"])
    out.push({ name: `half-close ${p}`, chunks: [b(request("GET", p, [HOST]))], methods: ["GET"], halfClose: true });
  out.push({
    name: "half-close mid-head",
    chunks: [b(`GET /lane/a HTTP/1.1\r\n${HOST}\r\n`)],
    methods: ["GET"],
    halfClose: true,
  });
  out.push({
    name: "half-close pipelined",
    chunks: [b(request("GET", "/lane/k-slow", [HOST]) + NEXT)],
    methods: ["GET", "GET"],
    halfClose: true,
  });
  for (const p of ["/lane/k-large", "/lane/k-slow", "/lane/k-chunked"])
    out.push({
      name: `leave mid-answer ${p}`,
      chunks: [b(request("GET", p, [HOST]))],
      methods: ["GET"],
      leaveAfter: int(1, 60),
    });
  out.push({
    name: "leave mid-pipeline",
    chunks: [b(request("GET", "/lane/k-large", [HOST]) + NEXT + NEXT)],
    methods: ["GET", "GET", "GET"],
    leaveAfter: 1000,
  });
  return out;
}
