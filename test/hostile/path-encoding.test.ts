/**
 * Path-encoding bypasses (issue 12): a generated corpus of spellings of two denied files, sent over
 * raw sockets (so no client library tidies them) through `policies` and `path_filter` to a static
 * file server we did not write (Python's http.server, which percent-decodes, merges `//` and
 * resolves `..` itself). Whatever the spelling, the secret bodies must never come back, the public
 * file must still be served, and the data plane must still be up.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { dcmtk } from "../peers/dicom-peers.js";
import { once } from "node:events";
import { join } from "node:path";
import {
  baseConfig,
  eventually,
  freePort,
  http,
  prng,
  startDataplane,
  startUpstream,
  tempDir,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, rawExchange } from "./harness.js";

const ADMIN_SECRET = "ADMIN-SECRET-7f3c9e1a";
const PRIVATE_SECRET = "PRIVATE-SECRET-4b8d2f60";
const PUBLIC_BODY = "PUBLIC-FILE-OK";

let files: ChildProcess;
let dp: Dataplane;

/** `policies` denies /admin (and below); `path_filter` denies /private (and below); both allow the rest. */
const pipeline = (name: string, prefix: string, upstream: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_policies", "${name}_filter"]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "${prefix}" }

[middleware.${name}_policies]
type = "policies"
options = { policies = [{ rules = [{ type = "allow_all" }, { type = "path", mode = "deny", paths = ["/admin", "/admin/{*rest}"] }] }] }

[middleware.${name}_filter]
type = "path_filter"
options = { rules = [{ deny = "/private" }, { deny = "/private/{*rest}" }, { allow = "/{*rest}" }, { allow = "/" }] }

[backends.${name}_out]
service = "http"
options = { base_url = "${upstream}" }
`;

before(async () => {
  const root = writeTree({
    "admin/secret.txt": ADMIN_SECRET,
    "private/secret.txt": PRIVATE_SECRET,
    "public/index.txt": PUBLIC_BODY,
  });
  const port = await freePort();
  files = spawn("python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", root], {
    stdio: "ignore",
  });
  const upstream = `http://127.0.0.1:${port}`;
  // The file server itself serves the secrets: the data plane is all that stands in the way.
  await eventually("python http.server to serve", async () => {
    const r = await http(`${upstream}/admin/secret.txt`).catch(() => undefined);
    return r?.text === ADMIN_SECRET;
  });
  const dir = writeTree({
    "config.toml": baseConfig(pipeline("root", "/", upstream) + pipeline("files", "/files", upstream)),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  if (files && files.exitCode === null) {
    files.kill();
    await once(files, "exit");
  }
});

const pct = (ch: string, lower = false) => {
  const h = ch.charCodeAt(0).toString(16).padStart(2, "0");
  return "%" + (lower ? h : h.toUpperCase());
};

/** Spellings of `/<dir>/secret.txt` that a lenient server might resolve to that file. */
function encodings(dir: string): string[] {
  const target = `/${dir}/secret.txt`;
  const out = new Set<string>();
  // Every single character percent-encoded (upper- and lower-case hex), `/` included.
  for (let i = 1; i < target.length; i++)
    for (const lower of [false, true]) out.add(target.slice(0, i) + pct(target[i]!, lower) + target.slice(i + 1));
  // Everything encoded, and the directory name encoded.
  out.add("/" + [...target.slice(1)].map((c) => (c === "/" ? c : pct(c))).join(""));
  out.add("/" + [...dir].map((c) => pct(c, true)).join("") + "/secret.txt");
  // Double percent-encoding (an upstream that decodes twice).
  out.add(`/%25${dir.charCodeAt(0).toString(16)}${dir.slice(1)}/secret.txt`);
  out.add(`/${dir}%252fsecret.txt`);
  out.add(`/x/%252e%252e/${dir}/secret.txt`);
  // Case.
  out.add(`/${dir[0]!.toUpperCase()}${dir.slice(1)}/secret.txt`);
  out.add(`/${dir.toUpperCase()}/SECRET.TXT`);
  out.add(`/${[...dir].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join("")}/secret.txt`);
  // Slashes, dot segments, traversal.
  for (const p of [
    `//${dir}/secret.txt`,
    `///${dir}/secret.txt`,
    `/${dir}//secret.txt`,
    `/./${dir}/secret.txt`,
    `/${dir}/./secret.txt`,
    `/x/../${dir}/secret.txt`,
    `/public/../${dir}/secret.txt`,
    `/public/x/../../${dir}/secret.txt`,
    `/x/%2e%2e/${dir}/secret.txt`,
    `/x/%2E%2E/${dir}/secret.txt`,
    `/x/.%2e/${dir}/secret.txt`,
    `/x/%2e./${dir}/secret.txt`,
    `/%2e/${dir}/secret.txt`,
    `/x/%2e%2e%2f${dir}/secret.txt`,
    `/x/..%2f${dir}/secret.txt`,
    `/x%2f..%2f${dir}/secret.txt`,
    `/public%2f..%2f${dir}%2fsecret.txt`,
    `/public/..%2F..%2F${dir}/secret.txt`,
    `/x/..%5c${dir}/secret.txt`,
    `/${dir}%2fsecret.txt`,
    `/${dir}%2Fsecret.txt`,
    // ;params
    `/${dir};x/secret.txt`,
    `/${dir};/secret.txt`,
    `/${dir}/secret.txt;x`,
    `/x/..;/${dir}/secret.txt`,
    `/x;/../${dir}/secret.txt`,
    `/${dir};jsessionid=1/secret.txt`,
    // Backslashes, literal and encoded.
    `/${dir}\\secret.txt`,
    `/x\\..\\${dir}\\secret.txt`,
    `/x/..\\${dir}/secret.txt`,
    `/${dir}%5csecret.txt`,
    `/x%5c..%5c${dir}%5csecret.txt`,
    // Overlong UTF-8 for `.`, `/` and `\`.
    `/x/%c0%ae%c0%ae/${dir}/secret.txt`,
    `/x/%c0%ae%c0%ae%c0%af${dir}/secret.txt`,
    `/x/%e0%80%ae%e0%80%ae/${dir}/secret.txt`,
    `/${dir}%c0%afsecret.txt`,
    `/${dir}%e0%80%afsecret.txt`,
    `/x/..%c1%9c${dir}/secret.txt`,
    `/x/%f0%80%80%ae%f0%80%80%ae/${dir}/secret.txt`,
    // NUL, tab and other control characters.
    `/${dir}%00/secret.txt`,
    `/${dir}/secret.txt%00`,
    `/${dir}/secret.txt%00.png`,
    `/${dir}%09/secret.txt`,
    `/${dir}\t/secret.txt`,
    `/${dir}%0d%0a/secret.txt`,
    `/${dir}%7f/secret.txt`,
    // Fragments and query tricks.
    `/${dir}#/secret.txt`,
    `/${dir}/secret.txt#`,
    `/${dir}%23/../${dir}/secret.txt`,
    `/${dir}/secret.txt?`,
    `/public/..%3f/${dir}/secret.txt`,
  ])
    out.add(p);
  // Combinations: a few mutations stacked, from a seeded generator.
  const rand = prng(12 + dir.length);
  const mutations: ((p: string) => string)[] = [
    (p) => p.replace(/\//, "//"),
    (p) => p.replace(/\/(?=[^/]*$)/, "/./"),
    (p) => "/x/.." + p,
    (p) => "/x/%2e%2e" + p,
    (p) => p.replace(dir, dir + ";a=b"),
    (p) => p.replace(/[a-z]/, (c) => pct(c, rand() < 0.5)),
    (p) => p.replace(/[a-z]/, (c) => c.toUpperCase()),
    (p) => p.replace(/\/(?=secret)/, "%2f"),
    (p) => p.replace(/\/(?=secret)/, "\\"),
    (p) => p.replace(/\/(?=secret)/, "%c0%af"),
    (p) => p.replace(/%/, "%25"),
  ];
  for (let n = 0; n < 150; n++) {
    let p = target;
    const k = 2 + Math.floor(rand() * 3);
    for (let j = 0; j < k; j++) p = mutations[Math.floor(rand() * mutations.length)]!(p);
    out.add(p);
  }
  out.delete(target);
  return [...out];
}

test("no spelling of a denied path reaches the file behind policies or path_filter", async (t) => {
  const port = dp.ports.default!;
  // The rules are live: the plain spellings are refused, and the public file is served.
  for (const prefix of ["", "/files"]) {
    assert.equal((await http(dp.url("default", `${prefix}/admin/secret.txt`))).status, 403);
    assert.equal((await http(dp.url("default", `${prefix}/private/secret.txt`))).status, 403);
    const pub = await http(dp.url("default", `${prefix}/public/index.txt`));
    assert.equal(pub.status, 200);
    assert.equal(pub.text, PUBLIC_BODY);
  }

  const corpus = [...encodings("admin"), ...encodings("private")].flatMap((p) => [p, "/files" + p]);
  assert.ok(corpus.length >= 500, `a corpus of ${corpus.length} spellings`);
  const leaks: string[] = [];
  const statuses = new Map<number | undefined, number>();
  for (let i = 0; i < corpus.length; i += 16) {
    await Promise.all(
      corpus.slice(i, i + 16).map(async (p) => {
        const r = await rawExchange(port, [`GET ${p} HTTP/1.1\r\nHost: files\r\nConnection: close\r\n\r\n`]);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.text.includes(ADMIN_SECRET) || r.text.includes(PRIVATE_SECRET)) leaks.push(`${p} → ${r.status}`);
        assert.ok(r.status !== undefined && r.status < 500, `${JSON.stringify(p)} answered ${r.status}`);
      }),
    );
  }
  assert.deepEqual(leaks, [], `${leaks.length} of ${corpus.length} spellings served a secret:\n${leaks.join("\n")}`);
  t.diagnostic(`${corpus.length} spellings; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(403) ?? 0) > 0, JSON.stringify([...statuses]));

  for (const prefix of ["", "/files"]) {
    const pub = await http(dp.url("default", `${prefix}/public/index.txt`));
    assert.equal(pub.text, PUBLIC_BODY, "the public file is still served after the corpus");
  }
  await assertStillServes(dp, "default", "/public/index.txt");
});

test("a DIMSE identifier cannot put a traversal into the DICOMweb path the gateway requests", async () => {
  // The `dicom` endpoint turns a C-GET into GET /studies/<StudyInstanceUID>: the UID comes from
  // the modality, so ".." would ask the DICOMweb upstream for /dicom-web/ itself.
  const seen: string[] = [];
  const upstream = await startUpstream((req, res) => {
    seen.push(req.url ?? "");
    res.statusCode = 404;
    res.end();
  });
  const port = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.modality]
endpoints = ["scp"]
backends = ["web"]

[endpoints.scp]
service = "dicom"
options = { port = ${port}, bind_address = "127.0.0.1", local_aet = "HARMONY", allowed_aets = ["GETSCU"] }

[backends.web]
service = "dicomweb"
options = { base_url = "${upstream.url}/dicom-web" }
`),
  });
  const gw = await startDataplane(join(dir, "config.toml"));
  try {
    await gw.waitForLog((l) => l.message === "DICOM listener started" && l.port === port);
    const get = (uid: string) =>
      dcmtk("getscu", [
        "-S",
        "-aet",
        "GETSCU",
        "-aec",
        "HARMONY",
        "-od",
        tempDir("harmony-getscu-"),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        `StudyInstanceUID=${uid}`,
        "127.0.0.1",
        String(port),
      ]);
    await get("..");
    await get("1.2.3");
    await gw.waitForLog((l) => l.message === "access" && l.path === "/studies/1.2.3");
    // The SCP may search (QIDO) before it retrieves; either way, only the real UID's paths reach the upstream.
    assert.ok(seen.includes("/dicom-web/studies/1.2.3"), `the real UID was not retrieved: ${seen.join(", ")}`);
    for (const u of seen) assert.match(u, /^\/dicom-web\/studies\/1\.2\.3(\/|\?|$)/, `the upstream was asked for ${u}`);
    const refused = gw.logs.find((l) => l.message === "access" && l.status === 400);
    assert.equal(refused?.pipeline, "modality");
    assert.match(String(refused?.path), /^\/studies\/\.\.(\/|$)/, "the traversal was refused with a 400");
    assert.equal(gw.proc.exitCode, null);
  } finally {
    await gw.stop();
    await upstream.close();
  }
});
