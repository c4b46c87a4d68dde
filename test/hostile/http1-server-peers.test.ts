/**
 * Clients we did not write against both values of `proxy.http1_server`: Python's http.client (one
 * connection reused), requests (a Session's pool) and curl --http1.1 (several URLs on one
 * connection with --next). Each runs the same sequence — lane GET/HEAD, chunked, 204, 304, large,
 * slow, a POST the lane hands to node:http mid-connection, middleware, management, a 404 — against
 * the node:http data plane and the llhttp one; what each client saw (statuses, framing headers,
 * bodies, and how many connections it needed) must be the same.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run, stopAll, tempDir } from "../../dataplane/test/helpers.js";
import { PEER_PYTHON } from "../peers/dicom-peers.js";
import { assertStillServes } from "./harness.js";
import { startRig, type Rig } from "./http1-rig.js";

const SCRIPT = fileURLToPath(new URL("../peers/python/http1_client.py", import.meta.url));

/** The sequence every client sends, in order, on as few connections as it manages. */
const REQUESTS = [
  { method: "GET", path: "/lane/a" },
  { method: "HEAD", path: "/lane/k-large" },
  { method: "GET", path: "/lane/k-chunked" },
  { method: "GET", path: "/lane/k-204" },
  { method: "GET", path: "/lane/k-304", headers: { "If-None-Match": '"v1"' } },
  { method: "GET", path: "/lane/k-large" },
  { method: "GET", path: "/lane/k-slow" },
  { method: "POST", path: "/lane/a", body: "posted", headers: { "Content-Type": "text/plain" } },
  { method: "GET", path: "/lane/a?after=post" },
  { method: "GET", path: "/mw/admin" },
  { method: "GET", path: "/mw/a" },
  { method: "GET", path: "/healthz" },
  { method: "GET", path: "/nowhere" },
  { method: "GET", path: "/lane/%2e%2e/mw/admin" },
  { method: "GET", path: "/lane/a" },
];

let node: Rig;
let lane: Rig;
const spec = join(tempDir("harmony-h1peers-"), "requests.json");

before(async () => {
  writeFileSync(spec, JSON.stringify(REQUESTS));
  [node, lane] = await Promise.all([startRig("node"), startRig("llhttp")]);
});

after(() => stopAll([() => node?.stop(), () => lane?.stop()]));

/** One JSON line per request; local ports become connection numbers in order of first use. */
function parseLines(out: string): unknown[] {
  const ports = new Map<number, number>();
  return out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const r = JSON.parse(l) as { local_port?: number; [k: string]: unknown };
      if (r.local_port !== undefined) {
        if (!ports.has(r.local_port)) ports.set(r.local_port, ports.size);
        r.local_port = ports.get(r.local_port);
      }
      return r;
    });
}

async function python(py: string, client: string, rig: Rig): Promise<unknown[]> {
  const r = await run(py, [SCRIPT, String(rig.port), client, spec]);
  assert.equal(r.code, 0, `${client} against ${rig.mode}: ${r.stderr}`);
  return parseLines(r.stdout);
}

async function compare(t: { diagnostic(m: string): void }, name: string, get: (rig: Rig) => Promise<unknown[]>) {
  const [a, b] = await Promise.all([get(node), get(lane)]);
  assert.equal(a.length, REQUESTS.length, `${name} against node gave ${a.length} results`);
  const conns = (v: unknown[]) =>
    v.reduce<number>((n, x) => {
      const r = x as { local_port?: number; connects?: number };
      return r.connects !== undefined ? n + r.connects : Math.max(n, (r.local_port ?? 0) + 1);
    }, 0);
  t.diagnostic(`${name}: ${JSON.stringify(a.map((x) => (x as { status?: number }).status))}, ${conns(a)} connections`);
  // Keep-alive reuse is what the comparison is about: a client that opened one per request tests less.
  assert.ok(conns(a) < REQUESTS.length, `${name} used ${conns(a)} connections for ${REQUESTS.length} requests`);
  assert.deepEqual(b, a, `${name}: llhttp (actual) differs from node (expected)`);
  await Promise.all([
    assertStillServes(node.dp, "default", "/lane/a"),
    assertStillServes(lane.dp, "default", "/lane/a"),
  ]);
}

test("Python http.client, one connection reused", async (t) => {
  const py = (await run("python3", ["-c", "import http.client"]).catch(() => ({ code: -1 }))).code === 0;
  if (!py) return t.skip("python3 is not on this machine");
  await compare(t, "http.client", (rig) => python("python3", "http.client", rig));
});

test("Python requests, one Session", async (t) => {
  // requests comes with the peers' venv (test/peers/peers.sh install: dicomweb-client depends on it).
  if (!existsSync(PEER_PYTHON)) return t.skip(`no peers venv at ${PEER_PYTHON} (bash test/peers/peers.sh install)`);
  await compare(t, "requests", (rig) => python(PEER_PYTHON, "requests", rig));
});

/** curl's view of the sequence: one transfer per request with --next, on connections it reuses. */
async function curl(rig: Rig): Promise<unknown[]> {
  const args: string[] = [];
  for (const [i, r] of REQUESTS.entries()) {
    if (i > 0) args.push("--next");
    args.push("--http1.1", "-s", "-o", "/dev/null", "--path-as-is");
    // -I for HEAD: curl then expects no body (-X HEAD would wait for one).
    if (r.method === "HEAD") args.push("-I");
    else if (r.method !== "GET") args.push("-X", r.method);
    if (r.body) args.push("--data-binary", r.body);
    for (const [k, v] of Object.entries(r.headers ?? {})) args.push("-H", `${k}: ${v}`);
    args.push(
      "-w",
      '{"status":%{http_code},"size":%{size_download},"connects":%{num_connects},"type":"%{content_type}","te":"%header{transfer-encoding}","cl":"%header{content-length}","conn":"%header{connection}","rid":"%header{x-request-id}"}\\n',
      `http://127.0.0.1:${rig.port}${r.path}`,
    );
  }
  const r = await run("curl", args);
  assert.equal(r.code, 0, `curl against ${rig.mode}: ${r.stderr}`);
  return r.stdout
    .trim()
    .split("\n")
    .map((l) => {
      const x = JSON.parse(l) as Record<string, unknown> & { rid: string };
      // Whether x-request-id was there, not its value (random per request).
      return { ...x, rid: x.rid !== "" };
    });
}

test("curl --http1.1 with --next (keep-alive reuse)", async (t) => {
  const has = await run("curl", ["--version"]).catch(() => ({ code: -1, stdout: "", stderr: "" }));
  if (has.code !== 0) return t.skip("curl is not on this machine");
  // %header{} needs curl 7.83+.
  const v = /curl (\d+)\.(\d+)/.exec(has.stdout);
  if (!v || Number(v[1]) * 100 + Number(v[2]) < 783) return t.skip(`curl ${v?.[0] ?? "?"} lacks %header{} (7.83+)`);
  await compare(t, "curl", curl);
});
