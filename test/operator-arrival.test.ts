/**
 * How the operator takes CRs that arrive in a burst, against a real kube-apiserver (bench/README.md,
 * operator-scale: 10,000 pipelines arriving were 147 renders and 477 ConfigMap writes):
 * - a gateway's events are gathered into one render: pipelines applied together are one
 *   ConfigMap write holding all of them, a single edit afterwards one more (the quiet period ends
 *   its window: the max delay here is an hour), and a stream that never pauses is still rendered
 *   (the max delay ends its window: the quiet period here is an hour);
 * - a new endpoint applied just before the pipeline that uses it gets one status write (InUse),
 *   not Unused and then InUse; a new pipeline's and endpoint's first verdicts record no Events
 *   (a refusal still does).
 * Counts, never times: the windows are set so wide that how fast this machine runs cannot matter.
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

async function stopOperator(): Promise<void> {
  if (operator && operator.exitCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  operator = undefined;
}

after(async () => {
  await stopOperator();
  await cp?.stop();
});

const kubectl = (args: string[], input?: string) => kubectlOk(cp, args, input);
const apply = (...items: object[]) => applyList(cp, items);
const eventually = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 90_000) =>
  poll(what, fn, { timeoutMs, context: () => (log ? `operator log:\n${log.slice(-4000)}` : "") });
const cr = (kind: string, ns: string, name: string, spec: object) => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind,
  metadata: { name, namespace: ns },
  spec,
});
const gateway = (ns: string) => cr("HarmonyGateway", ns, "gw", { networks: [{ name: "web", port: 8080 }] });
const endpoint = (ns: string, name: string, pathPrefix = `/${name}`) =>
  cr("HarmonyEndpoint", ns, name, { service: "http", pathPrefix });
const pipeline = (ns: string, name: string, ep: string) =>
  cr("HarmonyPipeline", ns, name, {
    gatewayRef: { name: "gw" },
    endpoints: [{ name: ep }],
    backends: [{ service: "http", url: "http://127.0.0.1:1" }],
  });

/** Starts the operator with these flags and waits for its metrics port. */
async function startOperator(flags: string[]): Promise<number> {
  log = "";
  operator = spawnOperator(cp.kubeconfig, ["--manage-workloads", "false", "--networks", "false", ...flags], (c) => {
    log += c;
  });
  return eventually("the operator's health port", () => {
    const m = /"health_port":(\d+)/.exec(log);
    return m ? Number(m[1]) : undefined;
  });
}

/** The operator's writes of one kind so far (harmony_operator_writes_total). */
async function writes(port: number, kind: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`harmony_operator_writes_total{kind="${kind}"}`));
  return line ? Number(line.split(" ").pop()) : 0;
}

const configData = async (ns: string) =>
  (
    JSON.parse(await kubectl(["get", "configmap", "gw-harmony-config", "-n", ns, "-o", "json"])) as {
      data?: Record<string, string>;
    }
  ).data ?? {};
const gatewayPipelines = async (ns: string) =>
  (
    JSON.parse(await kubectl(["get", "harmonygateway", "gw", "-n", ns, "-o", "json"])) as {
      status?: { pipelines?: number };
    }
  ).status?.pipelines;

test("pipelines applied together are one render with all of them; one edit after them is one more", async () => {
  const ns = "burst";
  const n = 30;
  await kubectl(["create", "namespace", ns]);
  // A quiet period far longer than an apply of 60 objects takes; a max delay that never ends a window.
  const port = await startOperator(["--render-quiet-period", "10s", "--render-max-delay", "1h"]);
  await apply(gateway(ns));
  await eventually("the gateway's first config", async () => ((await gatewayPipelines(ns)) === 0 ? true : undefined));
  const before = await writes(port, "ConfigMap");

  const names = Array.from({ length: n }, (_, i) => `p${String(i).padStart(2, "0")}`);
  await apply(...names.flatMap((p) => [endpoint(ns, `e-${p}`), pipeline(ns, p, `e-${p}`)]));
  await eventually(`all ${n} pipelines in the config`, async () =>
    (await gatewayPipelines(ns)) === n ? true : undefined,
  );
  const data = await configData(ns);
  assert.deepEqual(
    Object.keys(data)
      .filter((k) => k.startsWith("pipeline."))
      .sort(),
    names.map((p) => `pipeline.${ns}.${p}.toml`),
  );
  assert.equal((await writes(port, "ConfigMap")) - before, 1, "one ConfigMap write for the whole burst");

  // One edit on its own: rendered once its quiet period has passed (the max delay is an hour).
  await apply(endpoint(ns, "e-p00", "/moved"));
  await eventually("the edit in the config", async () =>
    Object.values(await configData(ns)).some((v) => v.includes('"/moved"')) ? true : undefined,
  );
  assert.equal((await writes(port, "ConfigMap")) - before, 2, "one more ConfigMap write for the edit");
  await stopOperator();
});

test("a stream of arrivals that never pauses is rendered by the max delay", async () => {
  const ns = "stream";
  await kubectl(["create", "namespace", ns]);
  // The quiet period never passes within this test: only the max delay can end a window.
  await startOperator(["--render-quiet-period", "1h", "--render-max-delay", "2s"]);
  await apply(gateway(ns));
  await eventually("the gateway's first config", async () => ((await gatewayPipelines(ns)) === 0 ? true : undefined));
  for (let i = 0; i < 3; i++) await apply(endpoint(ns, `e${i}`), pipeline(ns, `p${i}`, `e${i}`));
  await eventually("all 3 pipelines in the config", async () =>
    (await gatewayPipelines(ns)) === 3 ? true : undefined,
  );
  await stopOperator();
});

test("a new endpoint applied just before its pipeline is written once, InUse, never Unused first", async () => {
  const ns = "newpair";
  await kubectl(["create", "namespace", ns]);
  // The grace is longer than this test: the write can only be the pipeline's doing.
  await startOperator(["--new-endpoint-grace", "1h"]);
  await apply(gateway(ns));
  // The endpoint on its own first; an invalid one beside it is judged at once (no grace for a
  // rejection), so once that shows, the operator has had its turn at the new endpoint too.
  // The apply's own answer holds the endpoint as created: a read afterwards could already see (and
  // the replay below would then miss) a status written in between.
  const applied = JSON.parse(
    await kubectl(
      ["apply", "--server-side", "--force-conflicts", "-o", "json", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          endpoint(ns, "ep"),
          cr("HarmonyEndpoint", ns, "bad", { service: "http", pathPrefix: "/bad", options: { bogus: 1 } }),
        ],
      }),
    ),
  ) as { items: { metadata: { name: string; resourceVersion: string } }[] };
  const created = applied.items.find((o) => o.metadata.name === "ep")!.metadata.resourceVersion;
  await eventually("the invalid endpoint judged", async () =>
    (await kubectl(["get", "harmonyendpoint", "bad", "-n", ns, "-o", "json"])).includes('"Accepted"')
      ? true
      : undefined,
  );
  await apply(pipeline(ns, "p", "ep"));
  type Cond = { type: string; reason: string };
  await eventually("endpoint InUse", async () => {
    const o = JSON.parse(await kubectl(["get", "harmonyendpoint", "ep", "-n", ns, "-o", "json"])) as {
      status?: { conditions?: Cond[] };
    };
    return o.status?.conditions?.find((c) => c.type === "Ready")?.reason === "InUse" ? true : undefined;
  });
  // Every version of the endpoint since its creation, replayed by a watch from there.
  const replay = await kubectl([
    "get",
    "--raw",
    `/apis/harmony.runbeam.io/v1alpha1/namespaces/${ns}/harmonyendpoints?watch=1&fieldSelector=metadata.name%3Dep` +
      `&resourceVersion=${created}&timeoutSeconds=1`,
  ]);
  const readyReasons = replay
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { object: { status?: { conditions?: Cond[] } } })
    .map((e) => e.object.status?.conditions?.find((c) => c.type === "Ready")?.reason);
  assert.deepEqual(readyReasons, ["InUse"], "one status write, InUse");

  // Events: a refusal is recorded; the healthy pair's first verdicts are not (they are in the
  // status). The refused pipeline is judged by a later reconcile of the gateway than p was, and a
  // reconcile writes its Events before it ends: once q's shows, any of p's would be there.
  const q = pipeline(ns, "q", "ep");
  Object.assign(q.spec, { middleware: [{ name: "m", type: "carrier_pigeon" }] });
  await apply(q);
  type Ev = { type: string; reason: string; involvedObject: { kind: string; name: string } };
  const events = await eventually("q's Warning", async () => {
    const all = (JSON.parse(await kubectl(["get", "events", "-n", ns, "-o", "json"])) as { items: Ev[] }).items;
    return all.some((e) => e.involvedObject.name === "q" && e.type === "Warning") ? all : undefined;
  });
  const about = (kind: string, name: string) =>
    events.filter((e) => e.involvedObject.kind === kind && e.involvedObject.name === name).map((e) => e.reason);
  assert.deepEqual(about("HarmonyPipeline", "p"), [], "no Events for a new pipeline's first verdicts");
  assert.deepEqual(about("HarmonyEndpoint", "ep"), [], "none for its endpoint's");
  assert.deepEqual(about("HarmonyEndpoint", "bad"), ["InvalidOptions"], "a refused endpoint's Warning");
  await stopOperator();
});
