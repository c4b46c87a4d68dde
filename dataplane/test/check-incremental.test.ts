/**
 * The incremental checker gives the whole check's verdict: the same problems (file, line, key,
 * message), hash, files and pipelines, over trees where files clash with each other (a route, a
 * DIMSE port), name each other's tables (it must fall back to the whole check) or read other files
 * (an htpasswd file that changes); and after a change it checks again only the files concerned.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { checkConfig, IncrementalChecker, memoryFs, type CheckResult } from "../src/index.js";

const DIR = "/cfg";
const MAIN = `[proxy]
id = "t"
pipelines_path = "."

[network.web.http]
bind_address = "127.0.0.1"
bind_port = 18080
`;
const pipeline = (name: string, prefix: string, extra = "") => `# ${name}
[pipelines.${name}]
networks = ["web"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]
${extra}
[endpoints.${name}_in]
service = "echo"
[endpoints.${name}_in.options]
path_prefix = "${prefix}"

[backends.${name}_out]
service = "echo"
`;
const dimse = (name: string, port: number) => `[pipelines.${name}]
networks = ["web"]
endpoints = ["${name}_scp"]
backends = ["${name}_out"]

[endpoints.${name}_scp]
service = "dicom"
options = { port = ${port} }

[backends.${name}_out]
service = "echo"
`;
const sha = (pw: string) => `{SHA}${createHash("sha1").update(pw).digest("base64")}`;
const withAuth = (name: string, prefix: string) =>
  pipeline(name, prefix, `middleware = ["${name}_auth"]`) +
  `
[middleware.${name}_auth]
type = "basic_auth"
options = { htpasswd_path = "/secrets/${name}.htpasswd" }
`;

type Tree = Record<string, string>;
const opts = (tree: Tree, secrets: Record<string, string> = {}) => ({
  fs: memoryFs(Object.fromEntries(Object.entries(tree).map(([k, v]) => [`${DIR}/${k}`, v]))),
  readFile: (p: string) => {
    const v = secrets[p];
    if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
    return Buffer.from(v);
  },
});
/** What a caller reads of a result; problems compared as a set (ties in the sort may order differently). */
const view = (r: CheckResult) => ({
  ok: r.ok,
  hash: r.hash,
  files: r.files,
  pipelines: r.pipelines,
  problems: r.problems.map((p) => `${p.severity} ${p.file}:${p.line}:${p.column} ${p.path}: ${p.message}`).sort(),
});
const same = (c: IncrementalChecker, tree: Tree, secrets?: Record<string, string>) => {
  const whole = checkConfig(`${DIR}/config.toml`, opts(tree, secrets));
  const inc = c.check(`${DIR}/config.toml`, opts(tree, secrets));
  assert.deepEqual(view(inc), view(whole));
  return inc;
};

test("a clean tree: the whole check's hash, files and pipelines", () => {
  const tree = { "config.toml": MAIN, "a.toml": pipeline("a", "/a"), "b.toml": pipeline("b", "/b") };
  const r = same(new IncrementalChecker(), tree);
  assert.equal(r.ok, true);
  assert.deepEqual(r.pipelines, ["a", "b"]);
});

test("a route two files claim: the later file is refused, with the whole check's message and line", () => {
  const c = new IncrementalChecker();
  const tree = { "config.toml": MAIN, "a.toml": pipeline("a", "/x"), "b.toml": pipeline("b", "/x") };
  const r = same(c, tree);
  const clash = r.problems.filter((p) => p.severity === "error");
  assert.equal(clash.length, 1);
  assert.equal(clash[0]!.file, `${DIR}/b.toml`);
  assert.match(clash[0]!.message, /already claimed by pipeline "a"/);
  // Take the first one away: the second is fine, and nothing but the kept results is used.
  const rest = { "config.toml": MAIN, "b.toml": pipeline("b", "/x") };
  assert.equal(same(c, rest).ok, true);
  assert.equal(c.lastChecked, 0);
});

test("a port two DIMSE endpoints in different files listen on", () => {
  const tree = { "config.toml": MAIN, "a.toml": dimse("a", 18104), "b.toml": dimse("b", 18104) };
  const r = same(new IncrementalChecker(), tree);
  assert.equal(r.ok, false);
  assert.match(
    r.problems.find((p) => p.severity === "error")!.message,
    /port 18104 is already used by endpoint "a_scp"/,
  );
});

test("a DIMSE port that the main file's network listens on, and bad options, are the file's own", () => {
  const tree = {
    "config.toml": MAIN,
    "a.toml": dimse("a", 18080),
    "b.toml": pipeline("b", "/b").replace('service = "echo"\n[', 'service = "carrier_pigeon"\n['),
  };
  const r = same(new IncrementalChecker(), tree);
  assert.deepEqual([...new Set(r.problems.filter((p) => p.severity === "error").map((p) => p.file))].sort(), [
    `${DIR}/a.toml`,
    `${DIR}/b.toml`,
  ]);
});

test("files that name each other's tables, or define one twice: the whole check decides", () => {
  const shared = `[pipelines.b]
networks = ["web"]
endpoints = ["b_in"]
backends = ["a_out"]

[endpoints.b_in]
service = "echo"
[endpoints.b_in.options]
path_prefix = "/b"
`;
  const c = new IncrementalChecker();
  const r = same(c, { "config.toml": MAIN, "a.toml": pipeline("a", "/a"), "b.toml": shared });
  assert.equal(r.ok, true, "b uses a's backend: fine as a whole, not on its own");
  const twice = same(c, { "config.toml": MAIN, "a.toml": pipeline("a", "/a"), "b.toml": pipeline("a", "/other") });
  assert.match(twice.problems.map((p) => p.message).join("\n"), /also defined in/);
});

test("an edit checks one file again; a changed file that a check read checks its reader again", () => {
  const c = new IncrementalChecker();
  const tree: Tree = { "config.toml": MAIN };
  for (let i = 0; i < 20; i++) tree[`p${i}.toml`] = pipeline(`p${i}`, `/p${i}`);
  tree["auth.toml"] = withAuth("auth", "/auth");
  const secrets = { "/secrets/auth.htpasswd": `alice:${sha("pw")}\n` };
  assert.equal(same(c, tree, secrets).ok, true);
  assert.equal(c.lastChecked, 22, "the main file and each of 21 files");

  tree["p7.toml"] = pipeline("p7", "/seven");
  assert.equal(same(c, tree, secrets).ok, true);
  assert.equal(c.lastChecked, 1);

  const broken = { "/secrets/auth.htpasswd": "not a user line\n" };
  const r = same(c, tree, broken);
  assert.equal(r.ok, false);
  assert.match(r.problems.find((p) => p.severity === "error")!.message, /line 1 is not user:hash/);
  assert.equal(c.lastChecked, 1, "only the file whose check read the htpasswd file");

  tree["p8.toml"] = pipeline("p8", "/p0"); // now clashes with p0
  delete tree["p3.toml"];
  const after = same(c, tree, secrets);
  assert.match(after.problems.find((p) => p.severity === "error")!.message, /claimed by pipeline "p0"/);
  assert.equal(c.lastChecked, 2, "p8, and the reader of the htpasswd file, which changed back");

  // A change of the main file checks every file again (each was checked with it).
  const moved = { ...tree, "config.toml": MAIN.replace("18080", "18081") };
  same(c, moved, secrets);
  assert.equal(c.lastChecked, Object.keys(moved).length);
});

test("a file that does not parse, and a main file that does not", () => {
  same(new IncrementalChecker(), { "config.toml": MAIN, "a.toml": pipeline("a", "/a"), "b.toml": "[pipelines.b\n" });
  same(new IncrementalChecker(), { "config.toml": MAIN + "\n[[[", "a.toml": pipeline("a", "/a") });
});
