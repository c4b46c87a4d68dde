/**
 * The rig the HTTP/1.1 server-lane tests share: a recording upstream whose answers vary by path
 * (chunked, 204, 304, large, slow, echo of a body), and one data plane per `proxy.http1_server`
 * value on the same config — a backend-only route (`/lane`, the llhttp lane's hot path), a route
 * with middleware (`/mw`, policies and path_filter denying `/admin` and `/private` below it) and
 * management, all on the one network. Each data plane gets an upstream of its own, so that what
 * an upstream recorded during a case is what that data plane forwarded.
 */
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ROOT, startDataplane, startUpstream, writeTree, type Dataplane } from "../../dataplane/test/helpers.js";

/**
 * The upstream's own head limit, above the data plane's 16 KiB: otherwise a head just under the
 * data plane's limit grows past the upstream's with the forwarded headers Harmony adds, and the
 * upstream's 431 would hide what the data plane did at the boundary.
 */
const UPSTREAM_HEAD_LIMIT = 64 * 1024;

export const MODES = ["node", "llhttp"] as const;
export type Mode = (typeof MODES)[number];

/**
 * Whether this build knows `proxy.http1_server`. Until the lane's option lands, both data planes
 * run node:http (the differential then compares node:http with itself, which keeps the rig honest).
 */
export const HAS_HTTP1_SERVER_OPTION = readFileSync(join(ROOT, "dataplane/src/config/schema.ts"), "utf8").includes(
  "http1_server",
);

/** What the upstream saw of one request: the parts Harmony forwards, with its own port masked. */
export interface Seen {
  method: string;
  url: string;
  headers: [string, string][];
  bodyBytes: number;
  bodySha: string;
}

export interface RecordingUpstream {
  url: string;
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

export const LARGE = 256 * 1024;
const large = Buffer.alloc(LARGE, "L");

/** Answers by the last path segment: `k-chunked`, `k-204`, `k-304`, `k-large`, `k-slow`, `k-echo` (the target), `k-close`, `k-many`, `k-trailers`, `k-103`; anything else 200 "ok". */
function answer(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const key = /\/(k-[a-z0-9]+)(?:[?;#]|$)/.exec(req.url ?? "")?.[1];
  res.setHeader("x-up", "yes");
  res.setHeader("x-up-body-bytes", String(body.length));
  switch (key) {
    case "k-chunked":
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first-");
      res.end("second");
      return;
    case "k-204":
      res.writeHead(204).end();
      return;
    case "k-304":
      res.writeHead(304, { etag: '"v1"' }).end();
      return;
    case "k-echo": {
      // The target as the upstream received it: a reply that can only belong to its own request
      // (`slow` in the query: the body follows the head 100 ms later, so the request is in flight longer).
      const echo = Buffer.from(req.url ?? "", "latin1");
      res.writeHead(200, { "content-type": "text/plain", "content-length": echo.length });
      if ((req.url ?? "").includes("slow")) setTimeout(() => res.end(echo), 100);
      else res.end(echo);
      return;
    }
    case "k-close":
      // The upstream ends its connection: hop-by-hop, it must not end the client's.
      res.writeHead(200, { "content-type": "text/plain", "content-length": 5, connection: "close" }).end("close");
      return;
    case "k-many":
      // A large answer head: 100 cookies and one long value.
      res.setHeader(
        "set-cookie",
        Array.from({ length: 100 }, (_, i) => `c${i}=${"v".repeat(20)}`),
      );
      res.writeHead(200, { "content-type": "text/plain", "content-length": 4, "x-long": "l".repeat(8000) }).end("many");
      return;
    case "k-trailers":
      // node:http refuses trailers where there is no chunked body (HEAD).
      if (req.method === "HEAD") return void res.writeHead(200, { "content-type": "text/plain" }).end();
      res.writeHead(200, { "content-type": "text/plain", trailer: "x-checksum" });
      res.write("with-");
      res.addTrailers({ "x-checksum": "abc" });
      res.end("trailers");
      return;
    case "k-103":
      res.writeEarlyHints({ link: "</style.css>; rel=preload; as=style" });
      res.writeHead(200, { "content-type": "text/plain", "content-length": 5 }).end("hints");
      return;
    case "k-large":
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": LARGE }).end(large);
      return;
    case "k-slow":
      res.writeHead(200, { "content-type": "text/plain", "content-length": 8 });
      res.write("slow");
      setTimeout(() => res.end("done"), 150);
      return;
    default:
      res.writeHead(200, { "content-type": "text/plain", "content-length": 3 }).end("ok\n");
  }
}

export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const seen: Seen[] = [];
  let port = 0;
  const up = await startUpstream(
    (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const headers: [string, string][] = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2)
          headers.push([req.rawHeaders[i]!.toLowerCase(), maskUpstream(req.rawHeaders[i + 1]!, port)]);
        seen.push({
          method: req.method ?? "",
          url: req.url ?? "",
          headers,
          bodyBytes: body.length,
          bodySha: createHash("sha256").update(body).digest("hex").slice(0, 16),
        });
        answer(req, res, body);
      });
      req.on("error", () => undefined);
    },
    { maxHeaderSize: UPSTREAM_HEAD_LIMIT },
  );
  port = up.port;
  // Upgrades reach node:http as an event; with no listener the socket would be destroyed silently.
  up.server.on("upgrade", (req: IncomingMessage, socket) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: [], bodyBytes: 0, bodySha: "upgrade" });
    socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  });
  return { url: up.url, port: up.port, seen, close: () => up.close() };
}

/** The upstream's own port differs between the two rigs (in Host, say): masked. */
function maskUpstream(v: string, port: number): string {
  return port ? v.split(`:${port}`).join(":<upstream>") : v;
}

const route = (name: string, prefix: string, upstream: string, middleware: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
${middleware ? `middleware = [${middleware}]` : ""}
backends = ["${name}_out"]
[endpoints.${name}_in]
service = "http"
options = { path_prefix = "${prefix}" }
[backends.${name}_out]
service = "http"
options = { base_url = "${upstream}", headers_timeout_ms = 3000, body_timeout_ms = 3000 }
`;

/** The config both data planes share, but for `http1_server`. `proxyExtra` goes into [proxy]. */
export function rigConfig(mode: Mode, upstream: string, proxyExtra = "", headerTimeoutMs = 2000, port = 0): string {
  return `[proxy]
id = "rawdiff"
shutdown_timeout_ms = 2000
client_header_timeout_ms = ${headerTimeoutMs}
client_body_timeout_ms = 1500
${HAS_HTTP1_SERVER_OPTION ? `http1_server = "${mode}"` : ""}
${proxyExtra}
[logging]
log_level = "info"
access_log = false

[management]
enabled = true
network = "default"

[network.default.http]
bind_address = "127.0.0.1"
bind_port = ${port}
${route("lane", "/lane", upstream, "")}
${route("mw", "/mw", upstream, '"mw_policies", "mw_filter"')}
[middleware.mw_policies]
type = "policies"
options = { policies = [{ rules = [{ type = "allow_all" }, { type = "path", mode = "deny", paths = ["/admin", "/admin/{*rest}"] }] }] }
[middleware.mw_filter]
type = "path_filter"
options = { rules = [{ deny = "/private" }, { deny = "/private/{*rest}" }, { allow = "/{*rest}" }, { allow = "/" }] }
`;
}

export interface Rig {
  mode: Mode;
  dp: Dataplane;
  up: RecordingUpstream;
  port: number;
  configFile: string;
  stop(): Promise<void>;
}

/** `port` 0: an ephemeral one (a reload that rebinds the listeners then moves it: give a fixed one). */
export async function startRig(mode: Mode, proxyExtra = "", headerTimeoutMs = 2000, port = 0): Promise<Rig> {
  const up = await startRecordingUpstream();
  const configFile = join(
    writeTree({ "config.toml": rigConfig(mode, up.url, proxyExtra, headerTimeoutMs, port) }),
    "config.toml",
  );
  const dp = await startDataplane(configFile);
  return {
    mode,
    dp,
    up,
    port: dp.ports.default!,
    configFile,
    async stop() {
      await dp.stop();
      await up.close();
    },
  };
}
