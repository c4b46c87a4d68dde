import { connect } from "node:net";
import { join } from "node:path";
import { startDataplane, startUpstream, writeTree } from "../dataplane/test/helpers.js";

const up = await startUpstream((_q, s) => s.end("ok"));
const cfg = (mode: string) => `[proxy]
id = "linger"
http1_server = "${mode}"
[logging]
log_level = "info"
access_log = false
[network.default.http]
bind_address = "127.0.0.1"
bind_port = 0
[pipelines.p]
networks = ["default"]
endpoints = ["i"]
backends = ["o"]
[endpoints.i]
service = "http"
options = { path_prefix = "/p" }
[backends.o]
service = "http"
options = { base_url = "${up.url}" }
`;
async function probe(port: number, keepSending: boolean, bad: "431" | "400") {
  const s = connect(port, "127.0.0.1");
  await new Promise((r) => s.once("connect", r));
  const t0 = Date.now();
  let got = "";
  let ended = -1, closed = -1, err = "";
  s.on("data", (d) => (got += d.toString("latin1")));
  s.on("end", () => (ended = Date.now() - t0));
  s.on("error", (e: NodeJS.ErrnoException) => (err = e.code ?? e.message));
  const done = new Promise<void>((r) => s.on("close", () => { closed = Date.now() - t0; r(); }));
  s.write(bad === "431" ? `GET /p HTTP/1.1\r\nHost: a\r\nX-Big: ${"x".repeat(20000)}\r\n\r\n` : "GET /p HTTP/1.1\r\nHost a\r\n\r\n");
  const timer = keepSending ? setInterval(() => { if (!s.destroyed) s.write("y".repeat(1024)); }, 100) : undefined;
  await Promise.race([done, new Promise((r) => setTimeout(r, 8000))]);
  clearInterval(timer);
  s.destroy();
  return { status: got.slice(0, 12), ended, closed, err };
}
for (const mode of ["node", "llhttp"]) {
  const dp = await startDataplane(join(writeTree({ "config.toml": cfg(mode) }), "config.toml"));
  for (const bad of ["431", "400"] as const)
    for (const keep of [false, true]) console.log(mode, bad, keep ? "client keeps sending" : "client idle", JSON.stringify(await probe(dp.ports.default!, keep, bad)));
  await dp.stop();
}
await up.close();
