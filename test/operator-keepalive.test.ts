/**
 * The operator's API clients reuse their connections (operator/src/provider/keep-alive.ts), against
 * a real kube-apiserver. client-node 1.4 alone builds a new agent per request, so every status write
 * opened a TCP connection and made a full TLS handshake; here status writes, the API health check
 * and the leader Lease all go over the sockets already open. Counted in this process with Node's
 * own diagnostics channel: every request to the API server and the socket it went out on (each
 * new socket to the API server is a TCP connection and a TLS handshake).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { ClientRequest } from "node:http";
import type { Socket } from "node:net";
import { createLogger, transports } from "winston";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { kubeClients, type KubeClients } from "../operator/src/provider/kube.js";
import { ApiHealth } from "../operator/src/provider/api-health.js";
import { LeaderElector } from "../operator/src/leader/lease.js";

let cp: ControlPlane;
let kube: KubeClients;
const ns = "keepalive";
const logger = createLogger({ level: "error", transports: [new transports.Console({ silent: true })] });

before(async () => {
  cp = await startControlPlane();
  await cp.installCrds();
  const must = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  };
  await must(["create", "namespace", ns]);
  await must(
    ["apply", "--server-side", "-f", "-"],
    JSON.stringify({
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyEndpoint",
      metadata: { name: "ep", namespace: ns },
      spec: { service: "http", pathPrefix: "/ep" },
    }),
  );
  kube = kubeClients(cp.kubeconfig);
});

after(async () => {
  await cp?.stop();
});

/** Requests to the API server made while `fn` runs, and how many sockets they went out on. */
async function connections(fn: () => Promise<void>): Promise<{ requests: number; sockets: number }> {
  const host = new URL(cp.server).host; // 127.0.0.1:<port>
  const sockets = new Set<Socket>();
  let requests = 0;
  const onStart = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    if (request.getHeader("host") !== host) return;
    requests++;
    // The socket may be attached already (a pooled one) or come with the next tick.
    if (request.socket) sockets.add(request.socket);
    else request.once("socket", (s: Socket) => sockets.add(s));
  };
  subscribe("http.client.request.start", onStart);
  try {
    await fn();
  } finally {
    unsubscribe("http.client.request.start", onStart);
  }
  return { requests, sockets: sockets.size };
}

const writeStatus = (i: number) =>
  kube.patchStatus("harmony.runbeam.io", "v1alpha1", ns, "harmonyendpoints", "ep", {
    status: { observedGeneration: 1, pipelines: i },
  });

test("status writes one after another go over one connection (one TLS handshake, not one per write)", async (t) => {
  const writes = 20;
  const c = await connections(async () => {
    for (let i = 0; i < writes; i++) await writeStatus(i);
  });
  t.diagnostic(`${c.requests} requests on ${c.sockets} socket(s)`);
  assert.equal(c.requests, writes, "every write was seen going to the API server");
  // One socket, unless the server closed an idle one in between; before the pool, one per write.
  assert.ok(c.sockets <= 2, `${c.sockets} sockets (TLS handshakes) for ${writes} sequential writes`);
});

test("concurrent status writes open at most one socket per request in flight, and reuse them", async (t) => {
  const width = 8;
  const rounds = 5;
  const c = await connections(async () => {
    for (let r = 0; r < rounds; r++)
      await Promise.all(Array.from({ length: width }, (_, i) => writeStatus(r * 10 + i)));
  });
  t.diagnostic(`${c.requests} requests on ${c.sockets} socket(s)`);
  assert.equal(c.requests, width * rounds);
  assert.ok(c.sockets <= width, `${c.sockets} sockets for ${rounds} rounds of ${width} writes at once`);
});

test("the API health check and the leader Lease use the same pool as the status writes", async (t) => {
  await writeStatus(1); // a socket in the pool
  const c = await connections(async () => {
    const health = new ApiHealth(kube.kc, { intervalMs: 5000 }, logger);
    for (let i = 0; i < 3; i++) {
      await health.check();
      assert.equal(health.problem, undefined, "the health check passed");
    }
    let leading = false;
    const elector = new LeaderElector(kube.kc, { namespace: ns, name: "ka-lease", identity: "me" }, logger, {
      onStartedLeading: () => void (leading = true),
      onStoppedLeading: () => void (leading = false),
    });
    elector.start();
    const end = Date.now() + 30_000;
    while (!leading && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.ok(leading, "became leader");
    await elector.stop();
    await writeStatus(2);
  });
  t.diagnostic(`${c.requests} requests on ${c.sockets} socket(s)`);
  // 3 reviews, the Lease's read and create, its release (read and replace), and one more write.
  assert.ok(c.requests >= 7, `${c.requests} requests`);
  // All on the pooled socket; one more at most, if the server closed that one in between.
  assert.ok(c.sockets <= 2, `${c.sockets} sockets for ${c.requests} requests of three clients`);
});
