/**
 * The canonical request path in the running data plane: routing, policies, path_filter, the
 * access log and the upstream request all see the same form, and `proxy.path_normalization`
 * changes it the documented ways. Requests go over raw sockets so nothing tidies the paths first.
 */
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { baseConfig, runCli, startDataplane, startUpstream, writeTree, type Dataplane } from "./helpers.js";
import { rawExchange } from "../../test/hostile/harness.js";

let upstream: Awaited<ReturnType<typeof startUpstream>>;

before(async () => {
  upstream = await startUpstream((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ url: req.url }));
  });
});
after(async () => {
  await upstream?.close();
});

/** An echo pipeline at /g behind policies (deny /admin/...) and path_filter (deny /private/...), and a proxy at /up. */
const pipelines = () => `
[pipelines.guarded]
networks = ["default"]
endpoints = ["g_in"]
middleware = ["g_policies", "g_filter"]
backends = ["echo"]

[endpoints.g_in]
service = "http"
options = { path_prefix = "/g" }

[middleware.g_policies]
type = "policies"
options = { policies = [{ rules = [{ type = "allow_all" }, { type = "path", mode = "deny", paths = ["/admin/{*rest}"] }] }] }

[middleware.g_filter]
type = "path_filter"
options = { rules = [{ deny = "/private/{*rest}" }, { allow = "/{*rest}" }] }

[backends.echo]
service = "echo"

[pipelines.up]
networks = ["default"]
endpoints = ["up_in"]
backends = ["up_out"]

[endpoints.up_in]
service = "http"
options = { path_prefix = "/up" }

[backends.up_out]
service = "http"
options = { base_url = "${upstream.url}" }
`;

async function start(normalization: string): Promise<Dataplane> {
  const config = baseConfig(pipelines()).replace(
    "shutdown_timeout_ms = 5000\n",
    `shutdown_timeout_ms = 5000\n${normalization ? `\n[proxy.path_normalization]\n${normalization}\n` : ""}`,
  );
  return startDataplane(join(writeTree({ "config.toml": config }), "config.toml"));
}

/** GET `path` exactly as written; status and JSON body (undefined when the body is not JSON). */
async function get(
  dp: Dataplane,
  path: string,
  id?: string,
): Promise<{ status?: number; body: unknown; text: string }> {
  const r = await rawExchange(dp.ports.default!, [
    `GET ${path} HTTP/1.1\r\nHost: a\r\n${id ? `x-request-id: ${id}\r\n` : ""}Connection: close\r\n\r\n`,
  ]);
  const text = r.text.slice(r.text.indexOf("\r\n\r\n") + 4);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: r.status, body, text: r.text };
}

describe("defaults", () => {
  let dp: Dataplane;
  before(async () => (dp = await start("")));
  after(async () => await dp?.stop());

  test("routing uses the canonical path: //g//x and /%67/x route like /g/x", async () => {
    for (const p of ["//g//x", "/%67/x", "///g/%78"]) {
      const r = await get(dp, p);
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      assert.deepEqual(
        { path: (r.body as { path: string }).path, full: (r.body as { full_path: string }).full_path },
        { path: "/x", full: "/g/x" },
        p,
      );
    }
    assert.equal((await get(dp, "/G/x")).status, 404, "case matters by default");
  });

  test("policies and path_filter see the canonical path", async () => {
    for (const p of ["/g/admin/x", "/g//admin/x", "/g/%61dmin/x", "/g/admin//x", "/g/private/x", "/g/%70rivate/x"])
      assert.equal((await get(dp, p)).status, 403, p);
    assert.equal((await get(dp, "/g/Admin/x")).status, 200, "a different path when case matters");
  });

  test("the upstream gets the canonical path", async () => {
    const r = await get(dp, "/up//a/%62/%2a%e2%9c%93//");
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { url: "/a/b/%2A%E2%9C%93/" });
  });

  test("the access log records the canonical path", async () => {
    const id = "canonical-log-1";
    assert.equal((await get(dp, "//g/%61b//c", id)).status, 200);
    const line = await dp.waitForLog((l) => l.message === "access" && l.request_id === id);
    assert.equal(line.path, "/g/ab/c");
  });

  test("refused paths are a 400 problem naming the rule", async () => {
    const cases: [string, RegExp][] = [
      ["/g/a%2fb", /encoded '\/'/],
      ["/g/a;x", /';' parameters/],
      ["/g/%2e%2e/admin", /dot segments/],
      ["/g/%c0%ae%c0%ae/admin", /UTF-8/],
      ["/g/a%00", /control characters/],
      ["/g/a\\b", /'\\'/],
    ];
    for (const [p, detail] of cases) {
      const r = await get(dp, p);
      assert.equal(r.status, 400, p);
      assert.match(r.text, /content-type: application\/problem\+json/i, p);
      const problem = r.body as { type: string; detail: string };
      assert.equal(problem.type, "https://harmony.runbeam.io/problems/bad-path", p);
      assert.match(problem.detail, detail, p);
    }
  });
});

describe("decode %2F, strip ;params, case-insensitive", () => {
  let dp: Dataplane;
  before(async () => (dp = await start('encoded_slash = "decode"\nsemicolon = "strip"\ncase_insensitive = true')));
  after(async () => await dp?.stop());

  test("routes and path rules ignore case; the path is forwarded as sent", async () => {
    const r = await get(dp, "/G/Mixed/Case");
    assert.equal(r.status, 200, r.text);
    assert.equal((r.body as { path: string }).path, "/Mixed/Case");
    for (const p of ["/g/ADMIN/x", "/G/Admin/x", "/g/PRIVATE/x", "/g/%50rivate/x"])
      assert.equal((await get(dp, p)).status, 403, p);
  });

  test("an encoded slash becomes a separator, checked and forwarded as one", async () => {
    assert.deepEqual((await get(dp, "/up/a%2fb")).body, { url: "/a/b" });
    assert.equal((await get(dp, "/g/admin%2fx")).status, 403);
    assert.equal((await get(dp, "/g/x/..%2fadmin")).status, 400);
    assert.equal((await get(dp, "/up/a%5cb")).status, 400, "an encoded backslash is still refused");
  });

  test(";params are stripped before matching and forwarding", async () => {
    assert.deepEqual((await get(dp, "/up/a;x/b;jsessionid=1")).body, { url: "/a/b" });
    assert.equal((await get(dp, "/g/admin;x/y")).status, 403);
    assert.equal((await get(dp, "/g/x/..;/admin/y")).status, 400);
  });
});

describe("keep %2F and ;", () => {
  let dp: Dataplane;
  before(async () => (dp = await start('encoded_slash = "keep"\nsemicolon = "keep"')));
  after(async () => await dp?.stop());

  test("they are forwarded as sent, and still never hide a dot segment", async () => {
    assert.deepEqual((await get(dp, "/up/a%2fb;c=d")).body, { url: "/a%2Fb;c=d" });
    assert.equal((await get(dp, "/up/x/..%2fadmin")).status, 400);
    assert.equal((await get(dp, "/up/x%2f..%2fadmin")).status, 400);
  });
});

test("path_normalization is checked at load: known values pass cleanly, others name the key", async () => {
  const check = (table: string) =>
    runCli([
      "--check",
      "--config",
      join(
        writeTree({
          "config.toml": baseConfig().replace(
            "shutdown_timeout_ms = 5000\n",
            `shutdown_timeout_ms = 5000\n\n[proxy.path_normalization]\n${table}\n`,
          ),
        }),
        "config.toml",
      ),
    ]);
  const good = await check('encoded_slash = "decode"\nsemicolon = "strip"\ncase_insensitive = true');
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, / 0 warning\(s\)/);
  const bad = await check('encoded_slash = "sometimes"');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stdout + bad.stderr, /proxy\.path_normalization\.encoded_slash/);
});
