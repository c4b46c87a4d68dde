/** Config loading and validation through the real CLI: examples load, broken configs say where and why. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, existsSync, cpSync } from "node:fs";
import { join } from "node:path";
import { ROOT, runCli, writeTree, startDataplane, http, tempDir } from "./helpers.js";
import { renderSchemaFile, SCHEMA_FILE } from "../src/config/schema-gen.js";

const examples = readdirSync(join(ROOT, "examples"))
  .map((d) => join(ROOT, "examples", d, "config.toml"))
  .filter((f) => existsSync(f));

test("the examples cover both layouts", () => {
  const texts = examples.map((f) => readFileSync(f, "utf8"));
  assert.ok(
    texts.some((t) => /^id = /m.test(t) && /^\[services\./m.test(t)),
    "a 0.4-style example exists",
  );
  assert.ok(
    texts.some((t) => /^name = /m.test(t)),
    "a newer-style example exists",
  );
  assert.ok(examples.length >= 4);
});

for (const file of examples) {
  test(`example ${file.slice(ROOT.length)} passes --check`, async () => {
    const r = await runCli(["--check", "--config", file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /: ok \(\d+ file\(s\), [1-9]\d* pipeline\(s\), 0 warning\(s\)/);
  });
}

test("the 0.4 basic-echo example serves /echo when started", async (t) => {
  const dir = tempDir();
  cpSync(join(ROOT, "examples/basic-echo-0.4"), dir, { recursive: true });
  const cfg = join(dir, "config.toml");
  writeTree({ "config.toml": readFileSync(cfg, "utf8").replace("bind_port = 8080", "bind_port = 0") }, dir);
  const dp = await startDataplane(cfg);
  t.after(() => dp.stop());
  const r = await http(dp.url("http_net", "/echo/ping?x=1"), {
    method: "POST",
    body: '{"ping":"pong"}',
    headers: { "content-type": "application/json" },
  });
  assert.equal(r.status, 200);
  const body = r.json() as { path: string; full_path: string; json: unknown };
  assert.equal(body.path, "/ping");
  assert.equal(body.full_path, "/echo/ping?x=1");
  assert.deepEqual(body.json, { ping: "pong" });
  // logging.log_to_file writes the same JSON lines to the file, relative to the config's directory.
  assert.ok(existsSync(join(dir, "tmp/harmony_basic_echo.log")));
});

interface Expect {
  file: string;
  line: number;
  path: string;
  message: RegExp;
  severity?: "error" | "warning";
}

const MAIN = `[proxy]
id = "t"

[network.default.http]
bind_address = "127.0.0.1"
bind_port = 0
`;

const ECHO = (name: string, prefix: string, extra = "") => `
[pipelines.${name}]
networks = ["default"]
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

const broken: { name: string; files: Record<string, string>; expect: Expect[] }[] = [
  {
    name: "TOML syntax error",
    files: { "config.toml": `[proxy]\nid = "t"\nbroken = \n` },
    expect: [{ file: "config.toml", line: 3, path: "", message: /TOML syntax/ }],
  },
  {
    name: "wrong type",
    files: { "config.toml": MAIN.replace("bind_port = 0", 'bind_port = "eighty"') },
    expect: [{ file: "config.toml", line: 6, path: "network.default.http.bind_port", message: /must be integer/ }],
  },
  {
    name: "missing proxy id",
    files: { "config.toml": MAIN.replace('id = "t"', "") },
    expect: [{ file: "config.toml", line: 1, path: "proxy", message: /proxy\.id .* or proxy\.name .* is required/ }],
  },
  {
    name: "references to missing endpoint, backend, middleware and network",
    files: {
      "config.toml": MAIN,
      "pipelines/p.toml": `[pipelines.p]
networks = ["default", "elsewhere"]
endpoints = ["nope"]
middleware = ["missing_mw"]
backends = ["gone"]
`,
    },
    expect: [
      {
        file: "pipelines/p.toml",
        line: 2,
        path: "pipelines.p.networks[1]",
        message: /network "elsewhere" is not defined/,
      },
      {
        file: "pipelines/p.toml",
        line: 3,
        path: "pipelines.p.endpoints[0]",
        message: /endpoint "nope" is not defined/,
      },
      {
        file: "pipelines/p.toml",
        line: 4,
        path: "pipelines.p.middleware[0]",
        message: /middleware "missing_mw" is not defined/,
      },
      { file: "pipelines/p.toml", line: 5, path: "pipelines.p.backends[0]", message: /backend "gone" is not defined/ },
    ],
  },
  {
    name: "two pipelines claiming the same method and path on one network",
    files: {
      "config.toml": MAIN,
      "pipelines/a.toml": ECHO("first", "/same"),
      "pipelines/b.toml": ECHO("second", "/same/"),
    },
    expect: [
      {
        file: "pipelines/b.toml",
        line: 4,
        path: "pipelines.second.endpoints[0]",
        message: /route \(any method\) \/same on network "default" is already claimed by pipeline "first"/,
      },
    ],
  },
  {
    name: "unknown service and bad backend options",
    files: {
      "config.toml":
        MAIN +
        `
[endpoints.e]
service = "carrier_pigeon"

[backends.b]
service = "http"
[backends.b.options]
base_url = "ftp://example"
connect_timeout_ms = -1
`,
    },
    expect: [
      {
        file: "config.toml",
        line: 9,
        path: "endpoints.e.service",
        message:
          /unknown endpoint service "carrier_pigeon" \(available: dicom, dicom_scp, dicomweb, dimse, echo, fhir, http, jmix\)/,
      },
      { file: "config.toml", line: 14, path: "backends.b.options.base_url", message: /http:\/\/ or https:\/\// },
      { file: "config.toml", line: 15, path: "backends.b.options.connect_timeout_ms", message: /must be >= 1/ },
    ],
  },
  {
    // Harmony merged these (the later file wins); a differing copy is worth a warning naming both.
    name: "the same pipeline name in two files, differently",
    files: {
      "config.toml": MAIN,
      "pipelines/a.toml": ECHO("dup", "/a"),
      "pipelines/b.toml": ECHO("dup", "/b", 'description = "copy"').split("[endpoints")[0]!,
    },
    expect: [
      {
        file: "pipelines/b.toml",
        line: 2,
        path: "pipelines.dup",
        message: /also defined in .*a\.toml:2 with different content; .*b\.toml:2 is read later and wins/,
        severity: "warning",
      },
    ],
  },
  {
    name: "two networks on one port, management on an unknown network",
    files: {
      "config.toml":
        MAIN.replace("bind_port = 0", "bind_port = 18555") +
        `
[network.other.http]
bind_port = 18555

[management]
enabled = true
network = "mgmt"
`,
    },
    expect: [
      {
        file: "config.toml",
        line: 9,
        path: "network.other.http.bind_port",
        message: /port 18555 is already used by network "default"/,
      },
      { file: "config.toml", line: 13, path: "management.network", message: /network "mgmt" is not defined/ },
    ],
  },
  {
    name: "a DIMSE endpoint on a port a network uses, bad AE titles and peers",
    files: {
      "config.toml":
        MAIN.replace("bind_port = 0", "bind_port = 18556") +
        `
[pipelines.scp]
endpoints = ["scp"]
backends = ["b"]

[endpoints.scp]
service = "dicom"
options = { port = 18556, local_aet = "WAY_TOO_LONG_AE_TITLE", peers = { X = "host:99999" } }

[backends.b]
service = "echo"
`,
    },
    expect: [
      {
        file: "config.toml",
        line: 14,
        path: "endpoints.scp.options.port",
        message: /port 18556 is already used by network "default"/,
      },
      {
        file: "config.toml",
        line: 14,
        path: "endpoints.scp.options.local_aet",
        message: /must NOT have more than 16 characters/,
      },
      { file: "config.toml", line: 14, path: "endpoints.scp.options.peers.X", message: /port 99999 is out of range/ },
    ],
  },
  {
    name: "unknown keys warn but do not fail",
    files: { "config.toml": MAIN.replace('id = "t"', 'id = "t"\ncolour = "blue"') + ECHO("e", "/e", 'flavour = "x"') },
    expect: [
      { file: "config.toml", line: 3, path: "proxy.colour", message: /unknown key/, severity: "warning" },
      { file: "config.toml", line: 13, path: "pipelines.e.flavour", message: /unknown key/, severity: "warning" },
    ],
  },
];

for (const c of broken) {
  test(`--check reports: ${c.name}`, async () => {
    const dir = writeTree(c.files);
    const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
    const failing = c.expect.some((e) => (e.severity ?? "error") === "error");
    assert.equal(r.code, failing ? 1 : 0, `exit code; stderr:\n${r.stderr}`);
    const lines = r.stderr.split("\n");
    for (const e of c.expect) {
      const prefix = `${join(dir, e.file)}:${e.line}:`;
      const hit = lines.find(
        (l) =>
          l.startsWith(prefix) &&
          l.includes(`: ${e.severity ?? "error"}: ${e.path ? e.path + ": " : ""}`) &&
          e.message.test(l),
      );
      assert.ok(hit, `expected ${prefix} ${e.severity ?? "error"} ${e.path} ${e.message}; got:\n${r.stderr}`);
    }
  });
}

test("every problem is reported in one run", async () => {
  const dir = writeTree({
    "config.toml": MAIN.replace("bind_port = 0", 'bind_port = "x"') + `\n[endpoints.e]\nservice = "nope"\n`,
    "pipelines/p.toml": `[pipelines.p]\nnetworks = ["n"]\nendpoints = ["x"]\n`,
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid \(4 error\(s\)/);
});

test("a value outside a union of constants names the allowed values", async () => {
  // Regression: ajv only hands the failing union (parentSchema) to the message builder when verbose,
  // so every such error used to read "must be a different shape".
  const dir = writeTree({
    "config.toml": `[proxy]\nid = "x"\nlog_level = "loud"\n`,
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /proxy\.log_level: must be one of "trace", "debug", "info", "warn"/);
  assert.doesNotMatch(r.stderr, /a different shape/);
});

test("--version, --help and bad flags", async () => {
  const v = await runCli(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^harmony-dataplane \d+\.\d+\.\d+\n$/);
  const h = await runCli(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /--config <file>/);
  const bad = await runCli(["--frobnicate"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /frobnicate/);
});

test("a config that cannot load stops start-up with exit 1 and the problems", async () => {
  const dir = writeTree({ "config.toml": MAIN + `\n[pipelines.x]\nnetworks = ["default"]\nendpoints = ["missing"]\n` });
  const r = await runCli(["--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /config\.toml:\d+:\d+: error: pipelines\.x\.endpoints\[0\]: endpoint "missing" is not defined/,
  );
});

test("the committed JSON Schema is the one generated from the TypeBox source", () => {
  assert.equal(readFileSync(SCHEMA_FILE, "utf8"), renderSchemaFile(), "run `make schema` and commit the result");
});
