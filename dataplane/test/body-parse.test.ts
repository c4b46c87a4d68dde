/**
 * Bodies read as data for middleware (here through `transform`, whose output the echo backend
 * shows): XML, form, CSV, multipart, each bounded by proxy.content_limits, and XML entity
 * declarations refused outright.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { baseConfig, http, startDataplane, writeTree, type Dataplane } from "./helpers.js";

let dp: Dataplane;

before(async () => {
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.t]
networks = ["default"]
endpoints = ["t_in"]
middleware = ["t_mw"]
backends = ["echo"]

[endpoints.t_in]
service = "http"
options = { path_prefix = "/t" }

[middleware.t_mw]
type = "transform"
options = { spec_path = "wrap.json", apply = "left" }

[backends.echo]
service = "echo"
`).replace(
      "shutdown_timeout_ms = 5000\n",
      "shutdown_timeout_ms = 5000\n\n[proxy.content_limits]\nmax_body_size = 65536\nmax_xml_depth = 10\nmax_csv_rows = 3\nmax_multipart_files = 2\nmax_form_fields = 5\n",
    ),
    "transforms/wrap.json": JSON.stringify([{ operation: "shift", spec: { "@": "data" } }]),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
});

const send = (contentType: string, body: string | Buffer) =>
  http(dp.url("default", "/t/x"), { method: "POST", headers: { "content-type": contentType }, body });
type Echo = { json: { data: unknown }; headers: Record<string, string> };

test("XML becomes data (attributes with @); entity declarations and deep nesting are refused", async () => {
  const r = await send("application/xml", '<patient id="7"><name>Jane</name><tag>a</tag><tag>b</tag></patient>');
  assert.equal(r.status, 200, r.text);
  const echo = JSON.parse(r.text) as Echo;
  assert.deepEqual(echo.json.data, { patient: { "@id": "7", name: "Jane", tag: ["a", "b"] } });
  assert.equal(echo.headers["content-type"], "application/json", "the backend is told the body is JSON now");
  const xxe = await send(
    "application/xml",
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
  );
  assert.equal(xxe.status, 400);
  assert.match(xxe.text, /entity declarations are not accepted/);
  const deep = await send("application/xml", "<a>".repeat(20) + "</a>".repeat(20));
  assert.equal(deep.status, 400);
  assert.equal((await send("application/xml", "<a><b></a>")).status, 400, "not well-formed");
});

test("form and CSV become data; limits are 413; spreadsheet formulas are defused", async () => {
  const form = await send("application/x-www-form-urlencoded", "a=1&b=2&b=3");

  assert.deepEqual((JSON.parse(form.text) as Echo).json.data, { a: "1", b: ["2", "3"] });
  assert.equal((await send("application/x-www-form-urlencoded", "a=1&b=2&c=3&d=4&e=5&f=6")).status, 413);
  const csv = await send("text/csv", 'name,cmd\nJane,"=HYPERLINK(""x"")"\nJohn,ok\n');
  assert.deepEqual((JSON.parse(csv.text) as Echo).json.data, {
    rows: [
      { name: "Jane", cmd: '\'=HYPERLINK("x")' },
      { name: "John", cmd: "ok" },
    ],
    row_count: 2,
  });
  assert.equal((await send("text/csv", "a\n1\n2\n3\n4\n")).status, 413);
});

test("multipart: fields and file summaries (size, sha256); too many files is 413", async () => {
  const b = "harmony-form";
  const part = (name: string, content: string, filename?: string) =>
    `--${b}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"\r\nContent-Type: text/plain` : ""}\r\n\r\n${content}\r\n`;
  const body = part("note", "hello") + part("doc", "file-content", "a.txt") + `--${b}--\r\n`;
  const r = await send(`multipart/form-data; boundary=${b}`, body);
  assert.equal(r.status, 200, r.text);
  const data = (JSON.parse(r.text) as Echo).json.data as {
    fields: unknown;
    files: { size: number; checksum: string }[];
  };
  assert.deepEqual(data.fields, { note: "hello" });
  assert.equal(data.files[0]!.size, 12);
  assert.match(data.files[0]!.checksum, /^sha256:[0-9a-f]{64}$/);
  const many = part("f1", "x", "1.txt") + part("f2", "x", "2.txt") + part("f3", "x", "3.txt") + `--${b}--\r\n`;
  assert.equal((await send(`multipart/form-data; boundary=${b}`, many)).status, 413);
});
