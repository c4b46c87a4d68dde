/**
 * What Gateway API rules need behind a route, over the wire: weighted targets (and weight 0),
 * targets that answer 500 themselves (`static_status`), the `static` and `redirect` backends, and
 * the `headers` middleware.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { baseConfig, runCli, startDataplane, startUpstream, writeTree, type Dataplane } from "./helpers.js";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(dp: Dataplane, path: string, headers: Record<string, string | string[]> = {}, agent?: Agent) {
  return new Promise<Reply>((resolve, reject) => {
    const r = request({ host: "127.0.0.1", port: dp.ports.default, path, headers, agent: agent ?? false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    r.on("error", reject);
    r.end();
  });
}

const pipeline = (name: string, prefix: string, backend: string, middleware: string[] = []) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ${JSON.stringify(middleware)}
backends = ["${backend}"]
[endpoints.${name}_in]
service = "http"
[endpoints.${name}_in.options]
path_prefix = "${prefix}"
`;

test("weighted targets: 70/30 within ±5 %, weight 0 never chosen, static_status answers 500 itself", async (t) => {
  const ups = await Promise.all(["a", "b", "z", "ok"].map((n) => startUpstream((_req, res) => res.end(n))));
  t.after(() => Promise.all(ups.map((u) => u.close())));
  const [a, b, z, ok] = ups;
  const target = (name: string, url: string, weight?: number) =>
    `[targets.${name}]\nurl = "${url}"\n${weight === undefined ? "" : `weight = ${weight}\n`}`;
  const config = baseConfig(`
${target("a", a!.url, 70)}
${target("b", b!.url, 30)}
${target("z", z!.url, 0)}
${target("ok", ok!.url)}
[targets.broken]
static_status = 500
[targets.zero_a]
url = "${a!.url}"
weight = 0
[backends.split]
service = "http"
targets = ["a", "b", "z"]
[backends.half]
service = "http"
targets = ["ok", "broken"]
[backends.none]
service = "http"
targets = ["zero_a", "z"]
${pipeline("split", "/split", "split")}
${pipeline("half", "/half", "half")}
${pipeline("none", "/none", "none")}
`);
  const dir = writeTree({ "config.toml": config });
  const dp = await startDataplane(join(dir, "config.toml"));
  t.after(() => dp.stop());
  const agent = new Agent({ keepAlive: true, maxSockets: 10 });
  t.after(() => agent.destroy());

  const tally = async (path: string, n: number) => {
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i += 10) {
      const replies = await Promise.all(Array.from({ length: 10 }, () => get(dp, path, {}, agent)));
      for (const r of replies) {
        const k = r.status === 200 ? r.body : String(r.status);
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
    }
    return counts;
  };
  const N = 1000;
  const split = await tally("/split/x", N);
  assert.equal(split.get("z") ?? 0, 0, "weight 0 is never chosen");
  assert.ok(Math.abs((split.get("a") ?? 0) / N - 0.7) <= 0.05, `a: ${split.get("a")} of ${N}`);
  assert.ok(Math.abs((split.get("b") ?? 0) / N - 0.3) <= 0.05, `b: ${split.get("b")} of ${N}`);
  assert.equal((split.get("a") ?? 0) + (split.get("b") ?? 0), N);

  const half = await tally("/half/x", 200);
  assert.ok(Math.abs((half.get("500") ?? 0) / 200 - 0.5) <= 0.05, `500s: ${half.get("500")} of 200`);
  assert.equal((half.get("500") ?? 0) + (half.get("ok") ?? 0), 200);
  const r500 = await get(dp, "/half/x");
  const r500b = r500.status === 500 ? r500 : await get(dp, "/half/x");
  assert.equal(r500b.status, 500);
  assert.equal(r500b.headers["content-type"], "application/problem+json");
  assert.equal((JSON.parse(r500b.body) as { status: number }).status, 500);

  const none = await get(dp, "/none/x");
  assert.equal(none.status, 500);
  assert.match(none.body, /no target of this backend has a weight above 0/);
});

test("static backend: status, default problem body, configured headers and body", async (t) => {
  const config = baseConfig(`
[backends.e500]
service = "static"
[backends.e500.options]
status = 500
[backends.teapot]
service = "static"
[backends.teapot.options]
status = 418
headers = { "Content-Type" = "text/plain", "X-Why" = "short and stout", "content-length" = "999" }
body = "I'm a teapot"
[backends.empty]
service = "static"
[backends.empty.options]
status = 204
${pipeline("e500", "/e500", "e500")}
${pipeline("teapot", "/teapot", "teapot")}
${pipeline("empty", "/empty", "empty")}
`);
  const dp = await startDataplane(join(writeTree({ "config.toml": config }), "config.toml"));
  t.after(() => dp.stop());
  const e = await get(dp, "/e500/anything");
  assert.equal(e.status, 500);
  assert.equal(e.headers["content-type"], "application/problem+json");
  const p = JSON.parse(e.body) as { status: number; title: string };
  assert.deepEqual([p.status, p.title], [500, "Internal Server Error"]);
  const tp = await get(dp, "/teapot");
  assert.deepEqual(
    [tp.status, tp.body, tp.headers["x-why"], tp.headers["content-type"]],
    [418, "I'm a teapot", "short and stout", "text/plain"],
  );
  assert.equal(tp.headers["content-length"], String("I'm a teapot".length), "configured framing is ignored");
  const em = await get(dp, "/empty");
  assert.deepEqual([em.status, em.body], [204, ""]);
});

// ---- redirect: every combination of fields against the Gateway API rules --------------------------

interface Redirect {
  scheme?: string;
  hostname?: string;
  port?: number;
  path?: { type: "full" | "prefix"; value: string };
}
const SCHEMES = [undefined, "https", "http"];
const HOSTNAMES = [undefined, "example.org"];
const PORTS = [undefined, 8443, 443, 80];
const PATHS: Redirect["path"][] = [
  undefined,
  { type: "full", value: "/x" },
  { type: "prefix", value: "/new" },
  { type: "prefix", value: "/" },
];
const COMBOS: Redirect[] = [];
for (const scheme of SCHEMES)
  for (const hostname of HOSTNAMES)
    for (const port of PORTS) for (const path of PATHS) COMBOS.push({ scheme, hostname, port, path });

/** The expected Location, from the Gateway API text (HTTPRequestRedirectFilter), for a plain-HTTP listener. */
function expectedLocation(r: Redirect, prefix: string, reqPath: string, host: string, search: string): string {
  // "[::1]:9000" is host "[::1]", port 9000.
  const [, reqHost, reqPort] = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host.toLowerCase())!;
  const wellKnown: Record<string, number> = { http: 80, https: 443 };
  const scheme = r.scheme ?? "http";
  // No port: the scheme's well-known port when a scheme is given, else the listener's (the Host's).
  const port = r.port ?? (r.scheme ? wellKnown[scheme]! : reqPort ? Number(reqPort) : 80);
  let path = reqPath;
  if (r.path?.type === "full") path = r.path.value;
  if (r.path?.type === "prefix") {
    const rest = reqPath.slice(prefix.length);
    path = (r.path.value === "/" ? "" : r.path.value) + rest || "/";
  }
  return `${scheme}://${r.hostname ?? reqHost!}${port === wellKnown[scheme] ? "" : `:${port}`}${path}${search}`;
}

test("redirect backend: Location for every combination of scheme, hostname, port and path", async (t) => {
  let toml = "";
  COMBOS.forEach((r, i) => {
    const opts = [
      r.scheme ? `scheme = "${r.scheme}"` : "",
      r.hostname ? `hostname = "${r.hostname}"` : "",
      r.port ? `port = ${r.port}` : "",
      r.path ? `path = { type = "${r.path.type}", value = "${r.path.value}" }` : "",
    ].filter(Boolean);
    toml += `[backends.rd${i}]\nservice = "redirect"\n[backends.rd${i}.options]\n${opts.join("\n")}\n`;
    toml += pipeline(`rd${i}`, `/r${i}`, `rd${i}`);
  });
  toml += `[backends.perm]\nservice = "redirect"\n[backends.perm.options]\nstatus_code = 301\nhostname = "a.example"\n`;
  toml += pipeline("perm", "/perm", "perm");
  toml += `[backends.keep]\nservice = "redirect"\n[backends.keep.options]\nstatus_code = 308\npath = { type = "full", value = "/k" }\n`;
  toml += pipeline("keep", "/keep", "keep");
  const dp = await startDataplane(join(writeTree({ "config.toml": baseConfig(toml) }), "config.toml"));
  t.after(() => dp.stop());

  // Rows written by hand, so the model is not merely the code restated.
  const rows: [Redirect, string, string][] = [
    [{}, "gw.test:8080", "http://gw.test:8080/R/a/b?q=1"],
    [{ scheme: "https" }, "gw.test:8080", "https://gw.test/R/a/b?q=1"],
    [{ port: 80 }, "gw.test:8080", "http://gw.test/R/a/b?q=1"],
    [{ scheme: "https", port: 8443 }, "gw.test", "https://gw.test:8443/R/a/b?q=1"],
    [{ hostname: "example.org", path: { type: "prefix", value: "/new" } }, "gw.test", "http://example.org/new/a/b?q=1"],
    [{ path: { type: "prefix", value: "/" } }, "gw.test", "http://gw.test/a/b?q=1"],
  ];
  for (const [r, host, want] of rows)
    assert.equal(expectedLocation(r, "/R", "/R/a/b", host, "?q=1"), want, JSON.stringify(r));

  let checked = 0;
  for (const host of ["gw.test:8080", "GW.test", "[::1]:9000"]) {
    const replies = await Promise.all(
      COMBOS.map((_, i) => get(dp, `/r${i}/a/b?q=1`, { host }).then((rep) => [i, rep] as const)),
    );
    for (const [i, rep] of replies) {
      assert.equal(rep.status, 302, `combo ${i}`);
      assert.equal(
        rep.headers.location,
        expectedLocation(COMBOS[i]!, `/r${i}`, `/r${i}/a/b`, host, "?q=1"),
        `combo ${i} ${JSON.stringify(COMBOS[i])} host ${host}`,
      );
      checked++;
    }
  }
  assert.equal(checked, COMBOS.length * 3);
  const perm = await get(dp, "/perm/z", { host: "gw.test" });
  assert.deepEqual([perm.status, perm.headers.location], [301, "http://a.example/perm/z"]);
  const keep = await get(dp, "/keep/z", { host: "gw.test" });
  assert.deepEqual([keep.status, keep.headers.location], [308, "http://gw.test/k"]);
  // Whatever a client puts in Host never reaches Location unless it is a plain host name.
  const evil = await get(dp, "/r0/a", { host: "evil.example/x@" });
  assert.equal(evil.status, 400);
  assert.equal(evil.headers.location, undefined);
});

test("headers middleware: set, add, remove on both sides, any case; hop-by-hop refused at load", async (t) => {
  const up = await startUpstream((req, res) => {
    res.setHeader("x-r-add", "u");
    res.setHeader("x-r-remove", "gone?");
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(req.headers));
  });
  t.after(() => up.close());
  const config = baseConfig(`
[middleware.hm]
type = "headers"
[middleware.hm.options]
request = { set = { "X-A" = "1", "X-GW" = "gw" }, add = { "X-B" = "2", "x-new" = "n" }, remove = ["X-C"] }
response = { set = { "X-R-Set" = "s" }, add = { "X-R-Add" = "m" }, remove = ["X-R-REMOVE"] }
[backends.up]
service = "http"
[backends.up.options]
base_url = "${up.url}"
${pipeline("hm", "/hm", "up", ["hm"])}
`);
  const dp = await startDataplane(join(writeTree({ "config.toml": config }), "config.toml"));
  t.after(() => dp.stop());
  const r = await get(dp, "/hm/x", {
    "x-a": "client",
    "X-B": ["old1", "old2"],
    "x-c": "secret",
    "x-gw": "client-gw",
    // A client naming X-GW in Connection must not get the gateway's X-GW dropped.
    connection: "x-gw",
  });
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.body) as Record<string, string>;
  assert.equal(seen["x-a"], "1");
  assert.equal(seen["x-b"], "old1, old2,2");
  assert.equal(seen["x-new"], "n");
  assert.equal(seen["x-c"], undefined);
  assert.equal(seen["x-gw"], "gw");
  assert.equal(r.headers["x-r-set"], "s");
  assert.equal(r.headers["x-r-add"], "u,m");
  assert.equal(r.headers["x-r-remove"], undefined);

  for (const [side, op, name] of [
    ["request", "set", "Transfer-Encoding"],
    ["request", "add", "content-length"],
    ["response", "set", "Connection"],
    ["request", "set", "host"],
  ] as const) {
    const bad = baseConfig(`
[middleware.hm]
type = "headers"
[middleware.hm.options]
${side} = { ${op} = { "${name}" = "x" } }
[backends.up]
service = "echo"
${pipeline("hm", "/hm", "up", ["hm"])}
`);
    const res = await runCli(["--check", "--config", join(writeTree({ "config.toml": bad }), "config.toml")]);
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, new RegExp(`middleware\\.hm\\.options\\.${side}\\.${op}\\.${name}: frames the message`));
  }
});
