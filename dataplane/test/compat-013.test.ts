/**
 * Harmony 0.13 config elements, as the published examples write them (fixture tree
 * fixtures/harmony-0.13): `--check` loads it with one warning per feature this build does not act
 * on, and the running gateway resolves what it does — a target_ref backend reaches its upstream at
 * the target's base path with the target's credentials, a mesh from mesh_path guards a pipeline,
 * a table defined in two files takes the later file's version, and a network with no HTTP
 * listener serves its DIMSE endpoints (peer_ref and tcp_config) to dcmtk's echoscu.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { SignJWT } from "jose";
import {
  eventually,
  freePort,
  http,
  runCli,
  startDataplane,
  startUpstream,
  tempDir,
  writeTree,
  type Dataplane,
} from "./helpers.js";
import { fixture013 } from "./fixture-013.js";

const TOKEN = "compat-upstream-token-3f9a";
const MESH_SECRET = "healthcare-mesh-shared-secret-min-32-characters";

function findLine(stderr: string, file: string, line: number, severity: string, path: string, message: RegExp) {
  const prefix = `${file}:${line}:`;
  return stderr
    .split("\n")
    .find((l) => l.startsWith(prefix) && l.includes(`: ${severity}: ${path}: `) && message.test(l));
}

test("--check: the 0.13 fixture loads; each feature this build does not run is one located warning", async () => {
  const dir = fixture013();
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /: ok \(8 file\(s\), 6 pipeline\(s\), 7 warning\(s\)/);
  const expected: [string, number, string, RegExp][] = [
    ["config.toml", 9, "proxy.primary_provider", /"runbeam" is not used by this build/],
    ["config.toml", 11, "provider.runbeam", /not used by this build: no provider polling/],
    ["config.toml", 15, "runbeam", /not used by this build/],
    ["config.toml", 29, "network.http_net.http3", /HTTP\/3 is not available .*not started/],
    ["config.toml", 85, "remote_ingress.partner", /not used by this build/],
    ["mesh/healthcare.toml", 10, "ingress.fhir_ingress", /not used by this build/],
    [
      "pipelines/z-shared.toml",
      7,
      "endpoints.shared_in",
      /also defined in .*pipelines\/a-shared\.toml:7 with different content; .*pipelines\/z-shared\.toml:7 is read later and wins/,
    ],
  ];
  for (const [file, line, path, message] of expected) {
    assert.ok(
      findLine(r.stderr, join(dir, file), line, "warning", path, message),
      `expected ${file}:${line} ${path} ${message}; got:\n${r.stderr}`,
    );
  }
  assert.doesNotMatch(r.stderr, /: error: /);
  // Identical redefinitions (pipelines.shared, backends.shared_echo) pass without a word.
  assert.doesNotMatch(r.stderr, /pipelines\.shared:|backends\.shared_echo:/);
});

interface Case {
  name: string;
  files: Record<string, string>;
  /** [file, line, path, message]; all errors. */
  expect: [string, number, string, RegExp][];
}

const MAIN = `[proxy]
name = "t"

[network.web.http]
bind_address = "127.0.0.1"
bind_port = 0

[network.dimse.tcp_config]
bind_address = "127.0.0.1"
bind_port = 0
`;

const HTTP_PIPELINE = (backend: string, net = "web") => `
[pipelines.p]
networks = ["${net}"]
endpoints = ["in"]
backends = ["out"]

[endpoints.in]
service = "http"
options = { path_prefix = "/p" }

[backends.out]
${backend}
`;

const cases: Case[] = [
  {
    name: "a target_ref to no target",
    files: { "config.toml": MAIN + HTTP_PIPELINE('service = "http"\ntarget_ref = "nowhere"') },
    expect: [["config.toml", 23, "backends.out.target_ref", /target "nowhere" is not defined/]],
  },
  {
    name: "an http backend on a dicom target, a dicom target without a port",
    files: {
      "config.toml":
        MAIN +
        HTTP_PIPELINE('service = "http"\ntarget_ref = "pacs"') +
        `
[targets.pacs]
connection.host = "127.0.0.1"
connection.protocol = "dicom"

[targets.pacs2]
connection.host = "127.0.0.1"
connection.protocol = "dicom"

[backends.scu]
service = "dicom"
target_ref = "pacs2"
options = { aet = "PACS" }
`,
    },
    expect: [
      [
        "config.toml",
        23,
        "backends.out.target_ref",
        /target "pacs" speaks dicom; service "http" needs an http or https target/,
      ],
      ["config.toml", 30, "targets.pacs2.connection.port", /is required for a dicom target/],
    ],
  },
  {
    name: "credentials that are not there",
    files: {
      "config.toml":
        MAIN +
        HTTP_PIPELINE('service = "http"\ntarget_ref = "api"') +
        `
[targets.api]
connection.host = "127.0.0.1"
authentication = "authentications.missing_token"

[authentications.half]
method = "bearer"
`,
    },
    expect: [["config.toml", 27, "targets.api.authentication", /authentication "missing_token" is not defined/]],
  },
  {
    name: "an HTTP endpoint on a network that only has tcp_config; a peer_ref to no peer",
    files: {
      "config.toml":
        MAIN +
        HTTP_PIPELINE('service = "echo"', "dimse") +
        `
[pipelines.scp]
networks = ["dimse"]
endpoints = ["scp"]
backends = ["out"]

[endpoints.scp]
service = "dicom"
peer_ref = "ghost"
`,
    },
    expect: [
      ["config.toml", 13, "pipelines.p.networks[0]", /network "dimse" has no HTTP listener \(endpoints in need one\)/],
      ["config.toml", 31, "endpoints.scp.peer_ref", /peer "ghost" is not defined/],
    ],
  },
];

for (const c of cases) {
  test(`--check reports: ${c.name}`, async () => {
    const dir = writeTree(c.files);
    const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
    assert.equal(r.code, 1, `exit code; stderr:\n${r.stderr}`);
    for (const [file, line, path, message] of c.expect) {
      assert.ok(
        findLine(r.stderr, join(dir, file), line, "error", path, message),
        `expected ${file}:${line} error ${path} ${message}; got:\n${r.stderr}`,
      );
    }
  });
}

test("--check: documented Harmony types this build lacks load with warnings; their pipelines are left out", async () => {
  const dir = writeTree({
    "config.toml":
      MAIN +
      HTTP_PIPELINE('service = "echo"') +
      `
[pipelines.store]
networks = ["web"]
endpoints = ["store_in"]
middleware = ["connect"]
backends = ["files"]

[endpoints.store_in]
service = "http"
options = { path_prefix = "/store" }

[backends.files]
service = "http3"
options = { host = "h3.example" }

[pipelines.cookies]
networks = ["web"]
endpoints = ["cookie_in"]
middleware = ["cookie_check"]
backends = ["out"]

[endpoints.cookie_in]
service = "http"
options = { path_prefix = "/cookies" }

[middleware.cookie_check]
type = "cookie_auth"
`,
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /: ok \(1 file\(s\), 1 pipeline\(s\)/, "the echo pipeline still loads");
  const file = join(dir, "config.toml");
  for (const [line, path, message] of [
    [24, "pipelines.store", /not served: it uses "files", "connect", not available in this build/],
    [
      35,
      "backends.files.service",
      /backend service "http3" is not available in this build; pipelines using "files" are not served/,
    ],
    [38, "pipelines.cookies", /not served: it uses "cookie_check", not available in this build/],
    [49, "middleware.cookie_check.type", /middleware type "cookie_auth" is not available in this build/],
  ] as const)
    assert.ok(findLine(r.stderr, file, line, "warning", path, message), `${line} ${path}; got:\n${r.stderr}`);
});

describe("the fixture, running", () => {
  let dp: Dataplane;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let peerPort: number;
  let tcpPort: number;
  let dir: string;
  const seen: { url: string; authorization: string | undefined }[] = [];

  before(async () => {
    upstream = await startUpstream((req, res) => {
      seen.push({ url: req.url!, authorization: req.headers.authorization });
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ upstream: req.url }));
    });
    peerPort = await freePort();
    tcpPort = await freePort();
    dir = fixture013([
      ["bind_port = 8080", "bind_port = 0"],
      ["connection.port = 8888", `connection.port = ${upstream.port}`],
      ["connection.port = 11113", `connection.port = ${peerPort}`],
      ["bind_port = 11112", `bind_port = ${tcpPort}`],
    ]);
    dp = await startDataplane(join(dir, "config.toml"));
  });

  after(async () => {
    await dp?.stop();
    await upstream?.close();
  });

  test("an http backend with target_ref reaches the target at its base path, with its bearer credentials", async () => {
    const r = await http(dp.url("http_net", "/api/patients/7?_format=json"));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { upstream: "/api/v1/patients/7?_format=json" });
    assert.deepEqual(seen.at(-1), { url: "/api/v1/patients/7?_format=json", authorization: `Bearer ${TOKEN}` });
    const everything = JSON.stringify(dp.logs) + dp.stderr();
    assert.ok(!everything.includes(TOKEN), "the target's token is never logged");
  });

  test("the mesh from mesh_path guards its pipeline: outsiders 403, a member's token 200", async () => {
    assert.equal((await http(dp.url("http_net", "/mesh/x"))).status, 403);
    const token = await new SignJWT({ mesh_id: "healthcare" })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("healthcare")
      .setSubject("partner-gateway")
      .setIssuedAt()
      .setExpirationTime("2m")
      .sign(new TextEncoder().encode(MESH_SECRET));
    const r = await http(dp.url("http_net", "/mesh/x"), { headers: { "x-harmony-mesh": token } });
    assert.equal(r.status, 200, r.text);
  });

  test("a mesh file edited in mesh_path is reloaded: the old secret's tokens stop working", async () => {
    const sign = (secret: string) =>
      new SignJWT({ mesh_id: "healthcare" })
        .setProtectedHeader({ alg: "HS256" })
        .setIssuer("healthcare")
        .setSubject("partner-gateway")
        .setIssuedAt()
        .setExpirationTime("2m")
        .sign(new TextEncoder().encode(secret));
    const rotated = "rotated-healthcare-mesh-secret-of-32-plus-bytes";
    const file = join(dir, "mesh/healthcare.toml");
    const loads = () => dp.logs.filter((l) => l.message === "config loaded").length;
    const before = loads();
    writeFileSync(file, readFileSync(file, "utf8").replace(MESH_SECRET, rotated));
    await eventually("the edited mesh file to be loaded", () => loads() > before);
    const old = await http(dp.url("http_net", "/mesh/x"), { headers: { "x-harmony-mesh": await sign(MESH_SECRET) } });
    assert.equal(old.status, 401);
    const fresh = await http(dp.url("http_net", "/mesh/x"), { headers: { "x-harmony-mesh": await sign(rotated) } });
    assert.equal(fresh.status, 200, fresh.text);
  });

  test("a table defined in two files serves the later file's version", async () => {
    assert.equal((await http(dp.url("http_net", "/shared/x"))).status, 200);
    assert.equal((await http(dp.url("http_net", "/old-shared/x"))).status, 404);
  });

  test("a network with no HTTP listener serves DIMSE: echoscu to the peer_ref and the tcp_config listeners", () => {
    assert.equal(dp.ports.dicom_net, undefined, "no HTTP listener was opened for the DIMSE-only network");
    for (const [aet, port] of [
      ["HARMONY_SCP", peerPort],
      ["HARMONY_TCP", tcpPort],
    ] as const) {
      const r = spawnSync("echoscu", ["-to", "5", "-aec", aet, "127.0.0.1", String(port)]);
      assert.equal(r.status, 0, `${aet}@${port}: ${String(r.stderr)}`);
    }
  });
});

describe("an https target: verified with its CA, basic credentials, timeout_secs; backend options win", () => {
  let dp: Dataplane;
  let secure: Server;
  let plain: Awaited<ReturnType<typeof startUpstream>>;
  const pki = tempDir("harmony-pki-");
  const sh = (cmd: string) => {
    const r = spawnSync("bash", ["-c", cmd], { cwd: pki, encoding: "utf8" });
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
  };
  const seen: Record<string, string | undefined>[] = [];

  before(async () => {
    const ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    sh(`openssl req -x509 ${ec} -days 2 -subj "/CN=Compat CA" -keyout ca.key -out ca.crt 2>/dev/null`);
    sh(`openssl req ${ec} -subj "/CN=upstream" -keyout up.key -out up.csr 2>/dev/null`);
    sh(
      `openssl x509 -req -in up.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile <(printf "subjectAltName=DNS:localhost") -out up.crt 2>/dev/null`,
    );
    secure = createHttpsServer(
      { cert: readFileSync(join(pki, "up.crt")), key: readFileSync(join(pki, "up.key")) },
      (req, res) => {
        if (req.url!.includes("/never")) return; // no answer: timeout_secs applies
        seen.push({ url: req.url, authorization: req.headers.authorization, extra: req.headers["x-extra"] as string });
        res.end("secure");
      },
    );
    secure.listen(0, "127.0.0.1");
    await once(secure, "listening");
    const port = (secure.address() as AddressInfo).port;
    plain = await startUpstream((_req, res) => res.end("plain"));
    const target = (name: string, tls: string) => `
[targets.${name}]
connection.host = "localhost"
connection.port = ${port}
connection.protocol = "https"
connection.base_path = "/r4/"
${tls}
timeout_secs = 1
authentication = "clinic"
`;
    const route = (name: string, backend: string) => `
[pipelines.${name}]
networks = ["web"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]
[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }
[backends.${name}_out]
service = "http"
${backend}
`;
    const dir = writeTree({
      "ca.crt": readFileSync(join(pki, "ca.crt"), "utf8"),
      "config.toml":
        '[proxy]\nname = "tls"\n\n[network.web.http]\nbind_address = "127.0.0.1"\nbind_port = 0\n' +
        target("trusted", 'connection.tls.ca_path = "ca.crt"') +
        target("untrusted", "connection.tls.enabled = true") +
        `
[authentications.clinic]
method = "basic"
options.username = "harmony"
options.password = "pa55:word"
` +
        route("secure", 'target_ref = "trusted"\noptions = { headers = { x-extra = "kept" } }') +
        route("unverified", 'target_ref = "untrusted"') +
        route("override", `target_ref = "trusted"\noptions = { base_url = "${plain.url}" }`),
    });
    dp = await startDataplane(join(dir, "config.toml"));
  });

  after(async () => {
    await dp?.stop();
    await plain?.close();
    secure?.closeAllConnections();
    secure?.close();
  });

  test("https with the target's CA, base path, basic credentials and the backend's own header", async () => {
    const r = await http(dp.url("web", "/secure/Patient/1"));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, "secure");
    assert.deepEqual(seen.at(-1), {
      url: "/r4/Patient/1",
      authorization: `Basic ${Buffer.from("harmony:pa55:word").toString("base64")}`,
      extra: "kept",
    });
  });

  test("a certificate the target does not vouch for is refused (502), never accepted silently", async () => {
    const before = seen.length;
    const r = await http(dp.url("web", "/unverified/Patient/1"));
    assert.equal(r.status, 502, r.text);
    assert.equal(seen.length, before);
  });

  test("timeout_secs bounds the wait for an answer (504)", async () => {
    assert.equal((await http(dp.url("web", "/secure/never"))).status, 504);
  });

  test("options written on the backend win over the target's", async () => {
    const r = await http(dp.url("web", "/override/x"));
    assert.equal(r.text, "plain");
  });
});
