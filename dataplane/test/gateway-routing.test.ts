/**
 * Gateway API route precedence over the wire: a generated corpus of requests (hosts with ports,
 * upper case, IPv6 literals, no Host at all, wildcard vs exact, header case, repeated headers,
 * queries, methods) against a table of `http` endpoints, each answer checked against an
 * independent model of the contract (docs: README "Host, header and exact-path routing"), plus
 * hand-written rows the model must agree with.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { http, runCli, startDataplane, startUpstream, tempDir, writeTree, baseConfig } from "./helpers.js";

interface Match {
  name: string;
  value: string;
  type?: "regex";
}
interface Route {
  name: string;
  path: string;
  exact?: boolean;
  methods?: string[];
  hostnames?: string[];
  headers?: Match[];
  query?: Match[];
  precedence?: number;
  /** method_mismatch_status = 404 */
  quiet?: boolean;
}

const ROUTES: Route[] = [
  { name: "any_foo", path: "/foo" },
  { name: "any_foo_exact", path: "/foo", exact: true },
  { name: "ex_foo", path: "/", hostnames: ["foo.example.com"] },
  { name: "wc_foo", path: "/foo", hostnames: ["*.example.com"] },
  { name: "wc_long", path: "/", hostnames: ["*.bar.example.com"] },
  { name: "hdr1", path: "/foo", headers: [{ name: "version", value: "two" }] },
  {
    name: "hdr2",
    path: "/foo",
    headers: [
      { name: "Version", value: "two" },
      { name: "env", value: "^(a|b)$", type: "regex" },
    ],
  },
  { name: "q1", path: "/foo", query: [{ name: "animal", value: "whale" }] },
  { name: "m_post", path: "/m", methods: ["POST"] },
  { name: "m_any", path: "/m", precedence: 1 },
  { name: "m_put", path: "/put", methods: ["PUT"] },
  { name: "m_quiet", path: "/quiet", methods: ["PUT"], quiet: true },
  { name: "prec_a", path: "/p", hostnames: ["p.example.com"], precedence: 2 },
  { name: "prec_b", path: "/p", hostnames: ["p.example.com"], precedence: 1 },
  { name: "prec_c", path: "/p", hostnames: ["p.example.com"], precedence: 1, headers: [{ name: "x", value: "1" }] },
  { name: "v6", path: "/", hostnames: ["[::1]"] },
  { name: "multi", path: "/multi", hostnames: ["multi.example.com", "*.multi.org"] },
  { name: "multi_exact", path: "/multi/x", exact: true, hostnames: ["Z.MULTI.ORG"] },
];

const q = (s: string) => JSON.stringify(s);
const inline = (l: Match[]) =>
  `[${l.map((m) => `{ name = ${q(m.name)}, value = ${q(m.value)}${m.type ? `, type = "regex"` : ""} }`).join(", ")}]`;

function routeToml(r: Route, upstream: string): string {
  const opt = [
    `path_prefix = ${q(r.path)}`,
    r.exact ? `path_match = "exact"` : "",
    r.methods ? `methods = ${JSON.stringify(r.methods)}` : "",
    r.hostnames ? `hostnames = ${JSON.stringify(r.hostnames)}` : "",
    r.headers ? `headers = ${inline(r.headers)}` : "",
    r.query ? `query = ${inline(r.query)}` : "",
    r.precedence !== undefined ? `precedence = ${r.precedence}` : "",
    r.quiet ? "method_mismatch_status = 404" : "",
  ].filter(Boolean);
  return `
[pipelines.${r.name}]
networks = ["default"]
endpoints = ["${r.name}_in"]
backends = ["${r.name}_out"]
[endpoints.${r.name}_in]
service = "http"
[endpoints.${r.name}_in.options]
${opt.join("\n")}
[backends.${r.name}_out]
service = "http"
[backends.${r.name}_out.options]
base_url = "${upstream}/${r.name}"
`;
}

// ---- the model: the contract written out independently of route-table.ts ----------------------

interface Req {
  method: string;
  host?: string;
  path: string;
  search: string;
  /** Header lines as sent (a name may repeat). */
  headers: [string, string][];
}

function modelHost(h: string | undefined): string | undefined {
  if (h === undefined) return undefined;
  const l = h.toLowerCase();
  if (l.startsWith("[")) return l.slice(0, l.indexOf("]") + 1);
  return l.split(":")[0]!.replace(/\.$/, "");
}

/** Specificity of `hostname` for `host`: [kind, length] or undefined when it does not match. */
function hostScore(hostname: string, host: string | undefined): [number, number] | undefined {
  const p = hostname.toLowerCase();
  if (host === undefined) return undefined;
  if (p.startsWith("*.")) return host.endsWith(p.slice(1)) && host.length > p.length - 1 ? [1, p.length] : undefined;
  return p === host ? [2, p.length] : undefined;
}

function modelRoute(req: Req): { route: string } | { status: number } {
  const host = modelHost(req.host);
  const params = new URLSearchParams(req.search);
  const headerValue = (n: string) => {
    const v = req.headers.filter(([k]) => k.toLowerCase() === n.toLowerCase()).map(([, v]) => v);
    return v.length ? v.join(", ") : undefined;
  };
  const test = (m: Match, v: string | undefined) =>
    v !== undefined && (m.type === "regex" ? new RegExp(m.value).test(v) : v === m.value);
  type Cand = { r: Route; key: number[]; methodOk: boolean };
  const cands: Cand[] = [];
  ROUTES.forEach((r, order) => {
    let hs: [number, number] = [0, 0];
    if (r.hostnames) {
      const scores = r.hostnames.map((h) => hostScore(h, host)).filter((s) => s !== undefined);
      if (scores.length === 0) return;
      hs = scores.sort((a, b) => b[0] - a[0] || b[1] - a[1])[0]!;
    }
    const pathOk = r.exact
      ? req.path === r.path
      : r.path === "/" || req.path === r.path || req.path.startsWith(r.path + "/");
    if (!pathOk) return;
    if (!(r.headers ?? []).every((m) => test(m, headerValue(m.name)))) return;
    if (!(r.query ?? []).every((m) => test(m, params.get(m.name) ?? undefined))) return;
    const key = [
      hs[0],
      hs[1],
      r.exact ? 1 : 0,
      r.path.length,
      r.methods ? 1 : 0,
      r.headers?.length ?? 0,
      r.query?.length ?? 0,
      -(r.precedence ?? 0),
      -order,
    ];
    cands.push({ r, key, methodOk: !r.methods || r.methods.includes(req.method) });
  });
  const best = cands
    .filter((c) => c.methodOk)
    .sort((a, b) => {
      for (let i = 0; i < a.key.length; i++) if (a.key[i] !== b.key[i]) return b.key[i]! - a.key[i]!;
      return 0;
    })[0];
  if (best) return { route: best.r.name };
  // 405 only from routes that would serve the request but for its method and did not ask for 404.
  return { status: cands.some((c) => !c.r.quiet) ? 405 : 404 };
}

// ---- the wire ------------------------------------------------------------------------------------

/** Sends `req` and returns the route that served it (the upstream echoes its path) or the status. */
function send(port: number, agent: Agent, req: Req): Promise<{ route: string } | { status: number }> {
  const decode = (status: number, body: string) => (status === 200 ? { route: body.split("/")[1]! } : { status });
  if (req.host === undefined) {
    // No Host at all: only HTTP/1.0 may omit it (Node answers 400 to an HTTP/1.1 request without one).
    return new Promise((resolve, reject) => {
      const s = connect(port, "127.0.0.1");
      const lines = [`${req.method} ${req.path}${req.search} HTTP/1.0`, ...req.headers.map(([k, v]) => `${k}: ${v}`)];
      s.write(lines.join("\r\n") + "\r\n\r\n");
      let text = "";
      s.setEncoding("latin1").on("data", (c: string) => (text += c));
      s.on("error", reject);
      s.on("close", () => {
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1]);
        resolve(decode(status, text.slice(text.indexOf("\r\n\r\n") + 4)));
      });
    });
  }
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { host: req.host! };
    for (const [k, v] of req.headers) {
      const prev = headers[k];
      headers[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
    }
    const r = request(
      { host: "127.0.0.1", port, method: req.method, path: req.path + req.search, headers, agent, setHost: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve(decode(res.statusCode!, body)));
      },
    );
    r.on("error", reject);
    r.end();
  });
}

const HOSTS = [
  undefined,
  "foo.example.com",
  "FOO.Example.COM:8080",
  "foo.example.com.",
  "x.example.com",
  "a.bar.example.com",
  "bar.example.com",
  "example.com",
  "[::1]:80",
  "[::1]",
  "p.example.com:443",
  "multi.example.com",
  "z.multi.org",
  "multi.org",
  "other.test",
];
const PATHS = ["/", "/foo", "/foo/", "/foo/x", "/foobar", "/m", "/put", "/quiet", "/p", "/multi/x", "/multi/y"];
const HEADER_SETS: [string, string][][] = [
  [],
  [["version", "two"]],
  [
    ["VERSION", "two"],
    ["Env", "a"],
  ],
  [["version", "TWO"]],
  [
    ["version", "two"],
    ["env", "ab"],
  ],
  [
    ["version", "two"],
    ["version", "two"],
  ],
  [["x", "1"]],
];
const QUERIES = ["", "?animal=whale", "?animal=whale&animal=dolphin", "?Animal=whale", "?animal=dolphin&animal=whale"];

function corpus(): Req[] {
  const out: Req[] = [];
  for (const host of HOSTS)
    for (const path of PATHS)
      for (const headers of HEADER_SETS) out.push({ method: "GET", host, path, search: "", headers });
  for (const host of [undefined, "foo.example.com", "x.example.com", "other.test"])
    for (const path of PATHS)
      for (const search of QUERIES)
        for (const method of ["GET", "POST", "PUT"]) out.push({ method, host, path, search, headers: [] });
  return out;
}

test("route precedence: a generated corpus agrees with the Gateway API model", async (t) => {
  const up = await startUpstream((req, res) => res.end(req.url!.split("?")[0]));
  t.after(() => up.close());
  const dir = writeTree({ "config.toml": baseConfig(ROUTES.map((r) => routeToml(r, up.url)).join("")) });
  const dp = await startDataplane(join(dir, "config.toml"));
  t.after(() => dp.stop());
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.after(() => agent.destroy());

  // /admin/routes shows each entry's Gateway API match (one entry per hostname).
  const listed = (await http(dp.url("management", "/admin/routes"))).json() as {
    routes: { pipeline: string; path: string; match?: string; path_match?: string; precedence?: number }[];
  };
  const of = (p: string) =>
    listed.routes
      .filter((r) => r.pipeline === p)
      .map(({ path, match, path_match, precedence }) => ({ path, match, path_match, precedence }));
  assert.deepEqual(of("multi"), [
    { path: "/multi", match: "host *.multi.org", path_match: undefined, precedence: undefined },
    { path: "/multi", match: "host multi.example.com", path_match: undefined, precedence: undefined },
  ]);
  assert.deepEqual(of("prec_a"), [{ path: "/p", match: "host p.example.com", path_match: undefined, precedence: 2 }]);
  assert.deepEqual(of("any_foo_exact"), [
    { path: "/foo", match: undefined, path_match: "exact", precedence: undefined },
  ]);

  // Rows written by hand: the model must say the same, so it is not merely the code restated.
  const rows: [Req, string | number][] = [
    [{ method: "GET", host: "FOO.EXAMPLE.COM:8080", path: "/foo/x", search: "", headers: [] }, "ex_foo"],
    [{ method: "GET", host: "x.example.com", path: "/foo", search: "", headers: [] }, "wc_foo"],
    [{ method: "GET", host: "x.example.com", path: "/bar", search: "", headers: [] }, 404],
    [{ method: "GET", host: "a.bar.example.com", path: "/foo", search: "", headers: [] }, "wc_long"],
    [{ method: "GET", host: "example.com", path: "/foo", search: "", headers: [] }, "any_foo_exact"],
    [{ method: "GET", host: "example.com", path: "/foo/", search: "", headers: [] }, "any_foo"],
    [{ method: "GET", host: "h", path: "/foo/x", search: "", headers: [["VERSION", "two"]] }, "hdr1"],
    [
      {
        method: "GET",
        host: "h",
        path: "/foo/x",
        search: "",
        headers: [
          ["version", "two"],
          ["env", "b"],
        ],
      },
      "hdr2",
    ],
    [{ method: "GET", host: "h", path: "/foo/x", search: "?animal=whale", headers: [] }, "q1"],
    [{ method: "POST", host: "h", path: "/m", search: "", headers: [] }, "m_post"],
    [{ method: "GET", host: "h", path: "/m", search: "", headers: [] }, "m_any"],
    [{ method: "GET", host: "h", path: "/put", search: "", headers: [] }, 405],
    [{ method: "GET", host: "h", path: "/quiet", search: "", headers: [] }, 404],
    [{ method: "PUT", host: "h", path: "/quiet/x", search: "", headers: [] }, "m_quiet"],
    [{ method: "GET", host: "p.example.com", path: "/p", search: "", headers: [] }, "prec_b"],
    [{ method: "GET", host: "p.example.com", path: "/p", search: "", headers: [["x", "1"]] }, "prec_c"],
    [{ method: "GET", host: "[::1]:8080", path: "/zzz", search: "", headers: [] }, "v6"],
    [{ method: "GET", host: "z.multi.org", path: "/multi/x", search: "", headers: [] }, "multi_exact"],
    [{ method: "GET", host: "y.multi.org", path: "/multi/x", search: "", headers: [] }, "multi"],
    [{ method: "GET", path: "/foo", search: "", headers: [] }, "any_foo_exact"],
  ];
  for (const [req, want] of rows) {
    const expect = typeof want === "number" ? { status: want } : { route: want };
    assert.deepEqual(modelRoute(req), expect, `model, ${JSON.stringify(req)}`);
    assert.deepEqual(await send(dp.ports.default!, agent, req), expect, `wire, ${JSON.stringify(req)}`);
  }

  const all = corpus();
  const seen = new Set<string>();
  for (let i = 0; i < all.length; i += 16) {
    const batch = all.slice(i, i + 16);
    const got = await Promise.all(batch.map((r) => send(dp.ports.default!, agent, r)));
    batch.forEach((r, k) => {
      const want = modelRoute(r);
      seen.add(JSON.stringify(want));
      assert.deepEqual(got[k], want, JSON.stringify(r));
    });
  }
  // The corpus reaches every route and both refusals, so no rule goes untested; prec_a always
  // loses to prec_b (same match, higher precedence number), so it must never answer.
  for (const r of ROUTES)
    assert.equal(seen.has(JSON.stringify({ route: r.name })), r.name !== "prec_a", `corpus reaches ${r.name}`);
  assert.ok(seen.has(JSON.stringify({ status: 404 })) && seen.has(JSON.stringify({ status: 405 })));
});

test("routes on the same path with different hosts, headers or precedence load; true duplicates do not", async () => {
  const up = "http://127.0.0.1:9";
  const ok = [
    { name: "a", path: "/s", hostnames: ["a.example.com"] },
    { name: "b", path: "/s", hostnames: ["b.example.com"] },
    { name: "c", path: "/s", headers: [{ name: "v", value: "1" }] },
    { name: "d", path: "/s" },
    { name: "e", path: "/s", precedence: 1 },
    { name: "f", path: "/s", exact: true },
  ];
  const good = writeTree({ "config.toml": baseConfig(ok.map((r) => routeToml(r, up)).join("")) });
  const r1 = await runCli(["--check", "--config", join(good, "config.toml")]);
  assert.equal(r1.code, 0, r1.stderr);

  const dir = tempDir();
  const main = baseConfig(routeToml({ name: "a", path: "/s", hostnames: ["A.example.com", "b.example.com"] }, up));
  writeTree(
    {
      "config.toml": main,
      "pipelines/dup.toml": routeToml({ name: "z", path: "/s/", hostnames: ["a.example.com"] }, up),
    },
    dir,
  );
  const r2 = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r2.code, 1, r2.stderr);
  assert.match(
    r2.stderr,
    new RegExp(
      `${join(dir, "pipelines/dup.toml").replace(/[.]/g, "\\.")}:4:\\d+: error: pipelines\\.z\\.endpoints\\[0\\]: route \\(any method\\) /s \\(host a\\.example\\.com\\) on network "default" is already claimed by pipeline "a"`,
    ),
  );
});

test("a header regex that could backtrack is refused at load, with its option path", async () => {
  const up = "http://127.0.0.1:9";
  for (const pattern of ["(a)\\1", "^(?=a)a$"]) {
    const dir = writeTree({
      "config.toml": baseConfig(
        routeToml({ name: "r", path: "/", headers: [{ name: "x", value: pattern, type: "regex" }] }, up),
      ),
    });
    const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /endpoints\.r_in\.options\.headers\[0\]\.value: .*linear time/);
  }
});
