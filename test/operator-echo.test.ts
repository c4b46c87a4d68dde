/**
 * The operator's own ConfigMap write is no news to the gateway it rendered. Its ConfigMap informer
 * sees every write, ours included; passing our own back as a gateway event cost a second gateway
 * reconcile per CR edit (bench/README.md, operator-scale at 1,000 pipelines: 200 reconciles for 100
 * edits, ~120 ms each, running beside the data plane's reload and in front of the next edit). A
 * ConfigMap changed by anyone else (or deleted) still brings a reconcile that writes ours back.
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

const kubectl = (args: string[], input?: string) => kubectlOk(cp, args, input);
const eventually = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined) =>
  poll(what, fn, { timeoutMs: 90_000, context: () => (log ? `operator log:\n${log.slice(-4000)}` : "") });
const cr = (kind: string, name: string, spec: object) => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind,
  metadata: { name, namespace: "echo" },
  spec,
});

/** Gateway reconciles that have ended so far (harmony_operator_reconcile_total). */
async function gatewayReconciles(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith(`harmony_operator_reconcile_total{kind="gateway",result="success"}`));
  return line ? Number(line.split(" ").pop()) : 0;
}
const configData = async () =>
  (
    JSON.parse(await kubectl(["get", "configmap", "gw-harmony-config", "-n", "echo", "-o", "json"])) as {
      data?: Record<string, string>;
    }
  ).data ?? {};
const inConfig = async (text: string) => Object.values(await configData()).some((v) => v.includes(text));

test("one gateway reconcile per CR edit: the echo of our own ConfigMap write is not another", async () => {
  await kubectl(["create", "namespace", "echo"]);
  // A short quiet period, so that the echo of a write (before: a gateway event) ends its own
  // window long before the test's next edit arrives, rather than sharing that edit's reconcile.
  operator = spawnOperator(
    cp.kubeconfig,
    ["--manage-workloads", "false", "--networks", "false", "--render-quiet-period", "50ms"],
    (c) => {
      log += c;
    },
  );
  const port = await eventually("the operator's health port", () => {
    const m = /"health_port":(\d+)/.exec(log);
    return m ? Number(m[1]) : undefined;
  });
  await applyList(cp, [
    cr("HarmonyGateway", "gw", { networks: [{ name: "web", port: 8080 }] }),
    cr("HarmonyEndpoint", "ep", { service: "http", pathPrefix: "/start" }),
    cr("HarmonyPipeline", "p", {
      gatewayRef: { name: "gw" },
      endpoints: [{ name: "ep" }],
      backends: [{ service: "http", url: "http://127.0.0.1:1" }],
    }),
  ]);
  await eventually("the pipeline in the config", async () => ((await inConfig('"/start"')) ? true : undefined));
  const base = await gatewayReconciles(port);

  const edits = 5;
  for (let k = 0; k < edits; k++) {
    await applyList(cp, [cr("HarmonyEndpoint", "ep", { service: "http", pathPrefix: `/moved-${k}` })]);
    await eventually(`edit ${k} in the config`, async () => ((await inConfig(`"/moved-${k}"`)) ? true : undefined));
  }
  // Each edit's reconcile has ended (it writes the ConfigMap before the statuses).
  const seen = await eventually(`${edits} reconciles`, async () => {
    const n = (await gatewayReconciles(port)) - base;
    return n >= edits ? n : undefined;
  });
  // One per edit; one more at most for the echo of the first config's write, which may come after
  // `base` was read. Before: one more per edit, the echo's.
  assert.ok(seen <= edits + 1, `${seen} gateway reconciles for ${edits} edits`);

  // Anyone else's change to the ConfigMap is news: the operator writes its own config back.
  // (Its config-hash annotation too: a write is skipped while the live one carries the hash rendered.)
  const hand = {
    metadata: { annotations: { "harmony.runbeam.io/config-hash": "hand" } },
    data: { "config.toml": "# hand edit\n" },
  };
  await kubectl(["patch", "configmap", "gw-harmony-config", "-n", "echo", "--type=merge", "-p", JSON.stringify(hand)]);
  await eventually("the hand edit undone", async () => {
    const toml = (await configData())["config.toml"] ?? "";
    return toml.includes("hand edit") ? undefined : true;
  });
});
