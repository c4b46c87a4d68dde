/**
 * The few Kubernetes API calls the data plane makes (GET one object, WATCH one object), over
 * node:https. Not @kubernetes/client-node: importing it costs a data-plane process 79 MiB of RSS
 * and ~460 ms of CPU (measured on Node 24.22, see bench/README.md) and the image 54 MB, for two
 * calls. Credentials come from the pod's ServiceAccount (token re-read on every request, since
 * the kubelet rotates the projected token) or from a kubeconfig with a token or client
 * certificate (tests, running outside a cluster).
 *
 * Errors carry the HTTP status and the Status reason only: never a response body, which for a
 * Secret may hold its values, and never the token.
 */
import { readFileSync } from "node:fs";
import { request, type RequestOptions } from "node:https";
import { dirname, isAbsolute, resolve } from "node:path";
import YAML from "yaml";

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface KubeConnection {
  server: URL;
  tls: Pick<RequestOptions, "ca" | "cert" | "key">;
  /** The bearer token, read when called (undefined with client-certificate auth). */
  token: () => string | undefined;
}

export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {
    super(`Kubernetes API answered ${status}${reason ? ` ${reason}` : ""}`);
  }
}

/** The pod's own ServiceAccount credentials (KUBERNETES_SERVICE_HOST/PORT, token and CA files). */
export function inClusterConnection(env: NodeJS.ProcessEnv = process.env): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  if (!host) throw new Error("not running in a cluster (KUBERNETES_SERVICE_HOST unset); pass --kubeconfig");
  const h = host.includes(":") ? `[${host}]` : host;
  return {
    server: new URL(`https://${h}:${port}`),
    tls: { ca: readFileSync(`${SA_DIR}/ca.crt`) },
    token: () => readFileSync(`${SA_DIR}/token`, "utf8").trim(),
  };
}

interface KubeconfigDoc {
  "current-context"?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: { name: string; cluster: Record<string, string> }[];
  users?: { name: string; user: Record<string, string> }[];
}

/** The current context of a kubeconfig file: server, CA, and a token or client certificate. */
export function kubeconfigConnection(file: string): KubeConnection {
  const doc = YAML.parse(readFileSync(file, "utf8")) as KubeconfigDoc;
  const ctx = doc.contexts?.find((c) => c.name === doc["current-context"])?.context ?? doc.contexts?.[0]?.context;
  const cluster = (ctx ? doc.clusters?.find((c) => c.name === ctx.cluster) : doc.clusters?.[0])?.cluster;
  const user = (ctx ? doc.users?.find((u) => u.name === ctx.user) : doc.users?.[0])?.user ?? {};
  if (!cluster?.server) throw new Error(`${file}: no cluster server in the current context`);
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(dirname(file), p));
  const pem = (data: string | undefined, path: string | undefined) =>
    data ? Buffer.from(data, "base64") : path ? readFileSync(rel(path)) : undefined;
  const token = user.token;
  const tokenFile = user.tokenFile;
  return {
    server: new URL(cluster.server),
    tls: {
      ca: pem(cluster["certificate-authority-data"], cluster["certificate-authority"]),
      cert: pem(user["client-certificate-data"], user["client-certificate"]),
      key: pem(user["client-key-data"], user["client-key"]),
    },
    token: () => token ?? (tokenFile ? readFileSync(rel(tokenFile), "utf8").trim() : undefined),
  };
}

function options(conn: KubeConnection, path: string, signal?: AbortSignal): RequestOptions {
  const token = conn.token();
  return {
    host: conn.server.hostname.replace(/^\[|\]$/g, ""),
    port: conn.server.port || 443,
    path,
    method: "GET",
    ...conn.tls,
    headers: { accept: "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    signal,
    // A dedicated socket: the watch holds its connection for minutes.
    agent: false,
  };
}

/** Reads the Status reason of an error response, never echoing anything else of the body. */
function statusReason(body: string): string {
  try {
    const s = JSON.parse(body) as { kind?: string; reason?: unknown };
    return s.kind === "Status" && typeof s.reason === "string" ? s.reason : "";
  } catch {
    return "";
  }
}

/** GET one object as JSON; undefined when it does not exist (404). */
export function getObject<T>(conn: KubeConnection, path: string, signal?: AbortSignal): Promise<T | undefined> {
  return new Promise((done, fail) => {
    const req = request(options(conn, path, signal), (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", fail);
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode === 404) return done(undefined);
        if (res.statusCode !== 200) return fail(new KubeApiError(res.statusCode ?? 0, statusReason(body)));
        try {
          done(JSON.parse(body) as T);
        } catch {
          fail(new KubeApiError(res.statusCode, "unparseable body"));
        }
      });
    });
    req.on("error", fail);
    req.end();
  });
}

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

/**
 * WATCH: calls `onEvent` for each event (one JSON object per line) until the server ends the
 * stream (resolves) or the connection fails (rejects). An ERROR event (410 Gone above all)
 * rejects with its code, so the caller starts over from a fresh GET.
 */
export function watchObjects<T>(
  conn: KubeConnection,
  path: string,
  onEvent: (e: WatchEvent<T>) => void,
  signal?: AbortSignal,
  idleMs?: number,
): Promise<void> {
  return new Promise((done, fail) => {
    const req = request(options(conn, path, signal), (res) => {
      if (res.statusCode !== 200) {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c.length + body.length < 65536 ? c : ""));
        res.on("end", () => fail(new KubeApiError(res.statusCode ?? 0, statusReason(body))));
        return;
      }
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let ev: WatchEvent<T>;
          try {
            ev = JSON.parse(line) as WatchEvent<T>;
          } catch {
            req.destroy();
            return fail(new KubeApiError(200, "unparseable watch event"));
          }
          if (ev.type === "ERROR") {
            const s = ev.object as { code?: number; reason?: string };
            req.destroy();
            return fail(new KubeApiError(s.code ?? 0, s.reason ?? ""));
          }
          onEvent(ev);
        }
      });
      res.on("error", fail);
      res.on("end", () => done());
      // A connection cut mid-stream may close without an error event: still a failure.
      res.on("close", () => {
        if (!res.complete) fail(new KubeApiError(0, "watch connection lost"));
      });
    });
    // A silently dead connection (no FIN) would hold the watch forever: the server ends every
    // watch at its timeoutSeconds, so silence well past that means the connection is gone.
    if (idleMs) req.setTimeout(idleMs, () => req.destroy(new KubeApiError(0, "watch went silent")));
    req.on("error", fail);
    req.end();
  });
}
