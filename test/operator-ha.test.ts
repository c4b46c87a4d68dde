/**
 * Operator availability against a real kube-apiserver: Lease-based leader election (only the
 * leader writes; a killed leader is replaced within the lease time) and recovery after the API
 * server restarts mid-run.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { ROOT, sleep } from "../dataplane/test/helpers.js";

let cp: ControlPlane;
const procs: ChildProcess[] = [];

interface Operator {
  proc: ChildProcess;
  log: () => string;
  healthPort: number;
  writes: () => Promise<number>;
}

async function startOperator(identity: string): Promise<Operator> {
  const proc = spawn(
    process.execPath,
    [
      join(ROOT, "operator/dist/main.js"),
      "--kubeconfig",
      cp.kubeconfig,
      "--identity",
      identity,
      "--lease-namespace",
      "default",
      "--health-port",
      "0",
      "--manage-workloads",
      "false",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  procs.push(proc);
  let log = "";
  proc.stdout.setEncoding("utf8").on("data", (c: string) => (log += c));
  proc.stderr.setEncoding("utf8").on("data", (c: string) => (log += c));
  const end = Date.now() + 15_000;
  let port: number | undefined;
  while (!port && Date.now() < end) {
    port = /"health_port":(\d+)/.exec(log)?.[1] ? Number(/"health_port":(\d+)/.exec(log)![1]) : undefined;
    await sleep(50);
  }
  assert.ok(port, `operator ${identity} did not start:\n${log}`);
  return {
    proc,
    log: () => log,
    healthPort: port,
    writes: async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return text
        .split("\n")
        .filter((l) => l.startsWith("harmony_operator_writes_total{"))
        .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
    },
  };
}

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await fn().catch(() => false)) return Date.now() - start;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const gateway = (ns: string, name: string) =>
  JSON.stringify({
    apiVersion: "harmony.runbeam.io/v1alpha1",
    kind: "HarmonyGateway",
    metadata: { name, namespace: ns },
    spec: { networks: [{ name: "web", port: 8080 }] },
  });
const configMapExists = async (ns: string, name: string) =>
  (await cp.kubectl(["get", "configmap", `${name}-harmony-config`, "-n", ns])).code === 0;

before(async () => {
  cp = await startControlPlane();
  await cp.installCrds();
});

after(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  await cp?.stop();
});

test("only the leader writes; a killed leader is replaced within the lease time", async () => {
  const a = await startOperator("op-a");
  await until("op-a to lead", () => Promise.resolve(a.log().includes("Became leader")));
  const b = await startOperator("op-b");
  await kubectl(["create", "namespace", "ha"]);
  await kubectl(["apply", "-f", "-"], gateway("ha", "one"));
  await until("the leader to render gateway one", () => configMapExists("ha", "one"));
  await sleep(1000);
  assert.ok((await a.writes()) > 0, "the leader wrote");
  assert.equal(await b.writes(), 0, "the follower wrote nothing");
  assert.ok(!b.log().includes("Became leader"));
  const lease = JSON.parse(await kubectl(["get", "lease", "harmony-operator", "-n", "default", "-o", "json"])) as {
    spec: { holderIdentity: string; leaseDurationSeconds: number };
  };
  assert.equal(lease.spec.holderIdentity, "op-a");
  assert.equal(lease.spec.leaseDurationSeconds, 15);

  a.proc.kill("SIGKILL"); // no chance to release the lease
  const took = await until("op-b to take over", () => Promise.resolve(b.log().includes("Became leader")), 30_000);
  assert.ok(took <= 15_000 + 2_000 + 1_000, `takeover took ${took} ms (lease 15 s + retry 2 s)`);
  await kubectl(["apply", "-f", "-"], gateway("ha", "two"));
  await until("the new leader to render gateway two", () => configMapExists("ha", "two"));

  // A graceful stop hands the lease over at once.
  const c = await startOperator("op-c");
  b.proc.kill("SIGTERM");
  await once(b.proc, "exit");
  const handover = await until(
    "op-c to take over after a release",
    () => Promise.resolve(c.log().includes("Became leader")),
    15_000,
  );
  assert.ok(handover < 6_000, `handover after release took ${handover} ms`);
  c.proc.kill("SIGTERM");
  await once(c.proc, "exit");
});

test("a leader renews on its own last write, and a Lease someone else took since ends its leading", async () => {
  // The leader renews with the Lease its last write returned (one request per period, no read):
  // that resourceVersion must still make the renewal fail once anyone else has written the Lease.
  const d = await startOperator("op-d");
  await until("op-d to lead", () => Promise.resolve(d.log().includes("Became leader")), 30_000);
  await sleep(5000); // renewals on its own writes
  const lease = JSON.parse(await kubectl(["get", "lease", "harmony-operator", "-n", "default", "-o", "json"])) as {
    metadata: { resourceVersion?: string };
    spec: { holderIdentity: string; renewTime: string; leaseDurationSeconds: number };
  };
  assert.equal(lease.spec.holderIdentity, "op-d");
  // MicroTime: six fractional digits.
  const micro = (t: Date) => t.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
  lease.spec = { ...lease.spec, holderIdentity: "thief", renewTime: micro(new Date()), leaseDurationSeconds: 120 };
  delete lease.metadata.resourceVersion;
  await kubectl(["replace", "-f", "-"], JSON.stringify(lease));
  await until("op-d to stop leading", () => Promise.resolve(d.log().includes("Lost leadership")), 20_000);
  const after = JSON.parse(await kubectl(["get", "lease", "harmony-operator", "-n", "default", "-o", "json"])) as {
    spec: { holderIdentity: string };
  };
  assert.equal(after.spec.holderIdentity, "thief", "the old leader did not overwrite the Lease");
  d.proc.kill("SIGTERM");
  await once(d.proc, "exit");
  // The next test's operator must not wait out the thief's two minutes.
  await kubectl(["delete", "lease", "harmony-operator", "-n", "default"]);
});

test("informers recover after the API server restarts mid-run", async () => {
  const op = await startOperator("op-restart");
  // Wait for leadership (a previous test's operator may still hold the lease until it expires).
  await until("leadership", () => Promise.resolve(op.log().includes("Became leader")), 30_000);
  await kubectl(["create", "namespace", "restart"]);
  await kubectl(["apply", "-f", "-"], gateway("restart", "before"));
  await until("gateway before rendered", () => configMapExists("restart", "before"));
  await cp.restartApiserver();
  await kubectl(["apply", "-f", "-"], gateway("restart", "after"));
  await until("gateway after rendered once the watches resumed", () => configMapExists("restart", "after"), 60_000);
});
