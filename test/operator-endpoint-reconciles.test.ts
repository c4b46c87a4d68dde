/**
 * How many times the operator reconciles a HarmonyEndpoint while endpoints and their pipelines
 * arrive together. At 1,000 pairs it was ~4,700 endpoint reconciles (bench/README.md,
 * operator-scale): its add, its pipeline's add (an unjudged user: nothing to write), its
 * pipeline's verdict (the one that writes InUse), the echo of that write, and the new-endpoint
 * grace timer firing after the status was written. Now: its add, and its pipeline's verdict. And a
 * status edit by anyone else is still news: the operator writes its own back.
 * Counts, never times, against a real kube-apiserver.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { eventually as poll } from "../dataplane/test/helpers.js";
import { applyList, kubectlOk, spawnOperator } from "./operator-process.js";

let cp: ControlPlane;
let operator: ChildProcess | undefined;
let log = "";

before(async () => {
  cp = await startControlPlane();
  await cp.installCrds();
});

after(async () => {
  if (operator && operator.exitCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  await cp?.stop();
});

const ns = "epcount";
const kubectl = (args: string[], input?: string) => kubectlOk(cp, args, input);
const eventually = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined) =>
  poll(what, fn, { timeoutMs: 90_000, context: () => (log ? `operator log:\n${log.slice(-4000)}` : "") });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cr = (kind: string, name: string, spec: object) => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind,
  metadata: { name, namespace: ns },
  spec,
});

/** A counter of the operator's metrics, summed over the lines that start with `prefix`. */
async function counter(port: number, prefix: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(prefix))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
}
const endpointReconciles = (port: number) => counter(port, `harmony_operator_reconcile_total{kind="endpoint"`);
const endpointWrites = (port: number) => counter(port, `harmony_operator_writes_total{kind="HarmonyEndpoint/status"}`);

type Cond = { type: string; status: string; reason: string };
const readyReasons = async () =>
  (
    JSON.parse(await kubectl(["get", "harmonyendpoints", "-n", ns, "-o", "json"])) as {
      items: { status?: { conditions?: Cond[] } }[];
    }
  ).items.map((e) => e.status?.conditions?.find((c) => c.type === "Ready")?.reason);

test("an endpoint arriving with its pipeline is reconciled twice, not four or five times", async (t) => {
  await kubectl(["create", "namespace", ns]);
  operator = spawnOperator(cp.kubeconfig, ["--manage-workloads", "false", "--networks", "false"], (c) => {
    log += c;
  });
  const port = await eventually("the operator's health port", () => {
    const m = /"health_port":(\d+)/.exec(log);
    return m ? Number(m[1]) : undefined;
  });
  await applyList(cp, [cr("HarmonyGateway", "gw", { networks: [{ name: "web", port: 8080 }] })]);
  const n = 20;
  // As the bench applies them: each endpoint just before the pipeline that uses it, in one call.
  await applyList(
    cp,
    Array.from({ length: n }, (_, i) => [
      cr("HarmonyEndpoint", `ep-${i}`, { service: "http", pathPrefix: `/p${i}` }),
      cr("HarmonyPipeline", `pl-${i}`, {
        gatewayRef: { name: "gw" },
        endpoints: [{ name: `ep-${i}` }],
        backends: [{ service: "http", url: "http://127.0.0.1:1" }],
      }),
    ]).flat(),
  );
  await eventually(`all ${n} endpoints InUse`, async () => {
    const r = await readyReasons();
    return r.length === n && r.every((x) => x === "InUse") ? true : undefined;
  });
  // Past the new-endpoint grace (5 s by default), so that its timers have fired if they still do.
  await sleep(7000);
  const reconciles = await endpointReconciles(port);
  const written = await endpointWrites(port);
  t.diagnostic(`${reconciles} endpoint reconciles, ${written} endpoint status writes for ${n} endpoints`);
  // Per endpoint: its add, and its pipeline's verdict (which writes InUse). An endpoint the grace
  // ran out on before its pipeline was judged (a loaded API server) is written Unused first: one
  // more reconcile and one more write each. Before: 4-5 per endpoint.
  assert.ok(
    reconciles <= 2 * n + (written - n),
    `${reconciles} endpoint reconciles for ${n} endpoints (${written} status writes)`,
  );

  // Anyone else's status is news: the operator's own comes back.
  const hand = {
    status: {
      conditions: [
        {
          type: "Ready",
          status: "False",
          reason: "Hand",
          message: "edited",
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
      ],
    },
  };
  await kubectl([
    "patch",
    "harmonyendpoint",
    "ep-0",
    "-n",
    ns,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify(hand),
  ]);
  await eventually("the hand edit of ep-0's status undone", async () => {
    const o = JSON.parse(await kubectl(["get", "harmonyendpoint", "ep-0", "-n", ns, "-o", "json"])) as {
      status?: { conditions?: Cond[] };
    };
    const ready = o.status?.conditions?.find((c) => c.type === "Ready");
    return ready?.reason === "InUse" && o.status?.conditions?.some((c) => c.type === "Accepted") ? true : undefined;
  });
});
