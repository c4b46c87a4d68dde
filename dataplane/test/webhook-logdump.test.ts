/**
 * webhook, log_dump and json_extractor over real sockets: the webhook is posted in the background
 * with credentials redacted and its own auth from an env secret, and a webhook that never answers
 * does not hold the request; log_dump logs what passes with secrets replaced; json_extractor
 * refuses malformed JSON.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { baseConfig, http, sleep, startDataplane, startUpstream, writeTree, type Dataplane } from "./helpers.js";

let dp: Dataplane;
let hooks: Awaited<ReturnType<typeof startUpstream>>;
const received: { auth?: string; body: Record<string, unknown> }[] = [];
let stalled = 0;

const pipe = (name: string, mw: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_mw"]
backends = ["echo"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }

[middleware.${name}_mw]
${mw}
`;

before(async () => {
  hooks = await startUpstream((req, res) => {
    if (req.url === "/stall") {
      stalled++;
      return; // never answers
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({
        auth: req.headers.authorization,
        body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>,
      });
      res.end();
    });
  });
  const dir = writeTree({
    "config.toml": baseConfig(
      pipe(
        "hook",
        `type = "webhook"\noptions = { endpoint = "${hooks.url}/hook", redact_headers = ["x-patient"], auth_type = "bearer", token_env = "HOOK_TOKEN" }`,
      ) +
        pipe("stall", `type = "webhook"\noptions = { endpoint = "${hooks.url}/stall", timeout_secs = 30 }`) +
        pipe(
          "dump",
          `type = "log_dump"\noptions = { label = "debug-me", redact_headers = ["x-patient"], redact_data_fields = ["patient.ssn"] }`,
        ) +
        pipe("json", `type = "json_extractor"`) +
        `\n[backends.echo]\nservice = "echo"\n`,
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"), { HOOK_TOKEN: "hook-secret-token" });
});

after(async () => {
  await dp?.stop();
  await hooks?.close();
});

test("webhook: posted in the background, redacted, with its own bearer token", async () => {
  const r = await http(dp.url("default", "/hook/a?b=1"), {
    headers: { authorization: "Bearer user-token", "x-patient": "Jane Doe", "x-other": "kept" },
  });
  assert.equal(r.status, 200);
  for (let i = 0; i < 50 && received.length === 0; i++) await sleep(50);
  assert.equal(received.length, 1);
  const hook = received[0]!;
  assert.equal(hook.auth, "Bearer hook-secret-token");
  const request = hook.body.request as {
    method: string;
    uri: string;
    headers: Record<string, string>;
    query_params: Record<string, string>;
  };
  assert.equal(hook.body.side, "left");
  assert.equal(request.uri, "/hook/a?b=1");
  assert.deepEqual(request.query_params, { b: "1" });
  assert.equal(request.headers.authorization, "<redacted>");
  assert.equal(request.headers["x-patient"], "<redacted>");
  assert.equal(request.headers["x-other"], "kept");
});

test("a webhook that never answers does not hold the request", async () => {
  const r = await http(dp.url("default", "/stall/x"));
  assert.equal(r.status, 200);
  for (let i = 0; i < 50 && stalled === 0; i++) await sleep(50);
  assert.equal(stalled, 1, "the webhook was sent and is still unanswered while the client has its response");
});

test("log_dump: request and response logged with secrets replaced", async () => {
  await http(dp.url("default", "/dump/x?q=1"), {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Basic c2VjcmV0", "x-patient": "Jane" },
    body: JSON.stringify({ patient: { name: "Jane", ssn: "123-45-6789" } }),
  });
  const left = await dp.waitForLog((l) => l.message === "log_dump" && l.side === "left" && l.label === "debug-me");
  const right = await dp.waitForLog((l) => l.message === "log_dump" && l.side === "right" && l.label === "debug-me");
  const headers = left.headers as Record<string, string>;
  assert.equal(headers.authorization, "<redacted>");
  assert.equal(headers["x-patient"], "<redacted>");
  assert.deepEqual(left.body, { patient: { name: "Jane", ssn: "<redacted>" } });
  assert.equal(right.status, 200);
  // (The echo backend reflects the request into its response, so only the request side is checked.)
  assert.doesNotMatch(JSON.stringify(left), /123-45-6789|c2VjcmV0|Jane Doe/, "no secret in the request dump");
});

test("json_extractor: malformed JSON is a 400 before the backend", async () => {
  const bad = await http(dp.url("default", "/json/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{oops",
  });
  assert.equal(bad.status, 400);
  const ok = await http(dp.url("default", "/json/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(ok.status, 200);
});
