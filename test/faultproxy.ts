/**
 * Fault injection in front of the real kube-apiserver: a plain-HTTP reverse proxy on loopback that
 * forwards everything to the apiserver and, on command, answers chosen requests with a Status error
 * (409 Conflict and the like), cuts every open watch, or keeps watches open while swallowing their
 * events (a quiet watch). The apiserver is real; only the faults are made up.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ControlPlane } from "./controlplane/controlplane.js";

export interface Injection {
  method: string;
  path: RegExp;
  remaining: number;
  code: number;
  reason: string;
}

export interface FaultProxy {
  /** A kubeconfig that points at the proxy with the admin token. */
  kubeconfig: string;
  /** Answer the next `times` matching requests with `code` instead of forwarding them. */
  fail(method: string, path: RegExp, times: number, code?: number, reason?: string): Injection;
  /** End every watch response now (the client sees a clean end of stream). */
  endWatches(): number;
  /** While on, watch responses stay open but no event reaches the client. */
  quiet(on: boolean): void;
  /** Requests seen, in order, as "METHOD path?query". */
  log: string[];
  close(): Promise<void>;
}

export async function startFaultProxy(cp: ControlPlane): Promise<FaultProxy> {
  const upstream = new URL(cp.server);
  const injections: Injection[] = [];
  const watches = new Set<ServerResponse>();
  const log: string[] = [];
  let quiet = false;

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? "/";
    log.push(`${req.method} ${url}`);
    const path = url.split("?")[0]!;
    const hit = injections.find((i) => i.remaining > 0 && i.method === req.method && i.path.test(path));
    if (hit) {
      hit.remaining--;
      req.resume();
      res.writeHead(hit.code, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          reason: hit.reason,
          code: hit.code,
          message: `injected by the test's fault proxy: ${hit.reason}`,
        }),
      );
      return;
    }
    const isWatch = /[?&]watch=(true|1)\b/.test(url);
    const up = httpsRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: url,
        headers: { ...req.headers, host: upstream.host },
        ca: cp.caPem,
      },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (!isWatch) return void ur.pipe(res);
        res.flushHeaders(); // a watch with nothing to report yet must still look open to the client
        watches.add(res);
        res.on("close", () => {
          watches.delete(res);
          ur.destroy();
        });
        ur.on("data", (chunk: Buffer) => {
          if (!quiet) res.write(chunk);
        });
        ur.on("end", () => res.end());
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const kubeconfig = join(cp.dir, `kubeconfig-faultproxy-${port}`);
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // client-node refuses plain http unless TLS verification is off; there is no TLS to verify on
      // this loopback hop (the proxy's own hop to the apiserver verifies against the cluster CA).
      clusters: [{ name: "faulty", cluster: { server: `http://127.0.0.1:${port}`, "insecure-skip-tls-verify": true } }],
      users: [{ name: "admin", user: { token: cp.token } }],
      contexts: [{ name: "faulty", context: { cluster: "faulty", user: "admin" } }],
      "current-context": "faulty",
    }),
  );
  return {
    kubeconfig,
    log,
    fail(method, path, times, code = 409, reason = "Conflict") {
      const i = { method, path, remaining: times, code, reason };
      injections.push(i);
      return i;
    },
    endWatches() {
      const n = watches.size;
      for (const w of watches) w.end();
      return n;
    },
    quiet(on) {
      quiet = on;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const w of watches) w.destroy();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
