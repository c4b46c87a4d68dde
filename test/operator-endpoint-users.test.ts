/**
 * Pipelines indexed by the endpoints they use (operator/src/runner/endpoint-users.ts), against a
 * real kube-apiserver. First the index itself, fed by the operator's real pipeline informer: after
 * adds, a pipeline moving to other endpoints, status-only updates and deletes, each endpoint's users
 * are exactly the pipelines that reference it, and each event names every endpoint whose users it
 * changed. Then the operator: an endpoint's status counts its users and an endpoint's edit reaches
 * the config of every gateway one of its users is on, through the same moves and deletes.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import type { KubernetesObject } from "@kubernetes/client-node";
import { createLogger, transports } from "winston";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { eventually as poll } from "../dataplane/test/helpers.js";
import { applyList, kubectlOk, spawnOperator } from "./operator-process.js";
import { kubeClients } from "../operator/src/provider/kube.js";
import { makeCache, type Cache } from "../operator/src/provider/cache.js";
import { EndpointUsers } from "../operator/src/runner/endpoint-users.js";
import type { HarmonyPipeline } from "../operator/src/api/v1alpha1.js";

let cp: ControlPlane;
let operator: ChildProcess | undefined;
let log = "";
const logger = createLogger({ level: "error", transports: [new transports.Console({ silent: true })] });
const GROUP = "harmony.runbeam.io";

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
const apply = (...items: object[]) => applyList(cp, items);
const eventually = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000) =>
  poll(what, fn, { timeoutMs, context: () => (log ? `operator log:\n${log.slice(-4000)}` : "") });
const cr = (kind: string, ns: string, name: string, spec: object) => ({
  apiVersion: `${GROUP}/v1alpha1`,
  kind,
  metadata: { name, namespace: ns },
  spec,
});
const endpoint = (ns: string, name: string, pathPrefix = `/${name}`) =>
  cr("HarmonyEndpoint", ns, name, { service: "http", pathPrefix });
const pipeline = (ns: string, name: string, gateway: string, endpoints: string[]) =>
  cr("HarmonyPipeline", ns, name, {
    gatewayRef: { name: gateway },
    endpoints: endpoints.map((e) => ({ name: e })),
    backends: [{ service: "http", url: "http://127.0.0.1:1" }],
  });

type Pl = HarmonyPipeline & KubernetesObject;

test("the index holds exactly each endpoint's users through moves, status updates and deletes", async () => {
  const ns = "idx";
  const other = "idx-other";
  await kubectl(["create", "namespace", ns]);
  await kubectl(["create", "namespace", other]);
  const kube = kubeClients(cp.kubeconfig);
  const users = new EndpointUsers();
  const events: { name: string; verb: string; touched: string[] }[] = [];
  const cache: Cache<Pl> = makeCache<Pl>(
    kube.kc,
    [],
    {
      name: "pipelines",
      path: () => `/apis/${GROUP}/v1alpha1/harmonypipelines`,
      list: () =>
        kube.custom.listClusterCustomObject({ group: GROUP, version: "v1alpha1", plural: "harmonypipelines" }) as never,
      // As the controller feeds it: every event, before anything reads the index.
      onChange: (p, verb) =>
        events.push({
          name: `${p.metadata.namespace}/${p.metadata.name}`,
          verb,
          touched: users.update(p, verb).sort(),
        }),
    },
    logger,
  );
  await cache.start();
  try {
    const of = (n: string, e: string) => users.of(n, e).sort();
    const settled = (what: string, want: Record<string, string[]>) =>
      eventually(what, () =>
        Object.entries(want).every(([k, v]) => {
          const [n, e] = k.split("/") as [string, string];
          return JSON.stringify(of(n, e)) === JSON.stringify(v);
        })
          ? true
          : undefined,
      );
    const lastEvent = (name: string, verb: string) =>
      eventually(`a ${verb} event of ${name}`, () => events.findLast((e) => e.name === name && e.verb === verb));

    await apply(
      pipeline(ns, "p1", "gw", ["ep-a"]),
      pipeline(ns, "p2", "gw", ["ep-b"]),
      pipeline(ns, "p3", "gw", ["ep-a", "ep-c"]),
      // The same endpoint name in another namespace is another endpoint.
      pipeline(other, "p4", "gw", ["ep-a"]),
    );
    await settled("the first users", {
      [`${ns}/ep-a`]: ["p1", "p3"],
      [`${ns}/ep-b`]: ["p2"],
      [`${ns}/ep-c`]: ["p3"],
      [`${other}/ep-a`]: ["p4"],
    });

    // p3 moves from ep-a and ep-c to ep-b: all three endpoints' users change, and its event says so.
    events.length = 0;
    await apply(pipeline(ns, "p3", "gw", ["ep-b"]));
    await settled("p3 moved to ep-b", {
      [`${ns}/ep-a`]: ["p1"],
      [`${ns}/ep-b`]: ["p2", "p3"],
      [`${ns}/ep-c`]: [],
      [`${other}/ep-a`]: ["p4"],
    });
    assert.deepEqual((await lastEvent(`${ns}/p3`, "update")).touched, ["ep-a", "ep-b", "ep-c"]);

    // A status write (the operator's own, most events at scale) changes no users; it names the
    // endpoints whose Ready reads the pipeline's status.
    events.length = 0;
    await kube.patchStatus(GROUP, "v1alpha1", ns, "harmonypipelines", "p1", { status: { observedGeneration: 1 } });
    assert.deepEqual((await lastEvent(`${ns}/p1`, "update")).touched, ["ep-a"]);
    assert.deepEqual(of(ns, "ep-a"), ["p1"]);

    // Deletes take the pipeline out of every endpoint it used.
    events.length = 0;
    await kubectl(["delete", "harmonypipeline", "p2", "-n", ns]);
    await settled("p2 deleted", { [`${ns}/ep-b`]: ["p3"] });
    assert.deepEqual((await lastEvent(`${ns}/p2`, "delete")).touched, ["ep-b"]);
    await kubectl(["delete", "harmonypipeline", "p1", "p3", "-n", ns]);
    await kubectl(["delete", "harmonypipeline", "p4", "-n", other]);
    await settled("every pipeline deleted", {
      [`${ns}/ep-a`]: [],
      [`${ns}/ep-b`]: [],
      [`${ns}/ep-c`]: [],
      [`${other}/ep-a`]: [],
    });
  } finally {
    await cache.stop();
  }
});

test("the operator: an endpoint's status and its edits follow its users through moves and deletes", async () => {
  const ns = "users";
  await kubectl(["create", "namespace", ns]);
  operator = spawnOperator(cp.kubeconfig, ["--manage-workloads", "false"], (c) => (log += c));

  type Status = { pipelines?: number; conditions?: { type: string; reason: string }[] };
  const epStatus = async (name: string) =>
    (JSON.parse(await kubectl(["get", "harmonyendpoint", name, "-n", ns, "-o", "json"])) as { status?: Status }).status;
  const usedBy = (name: string, n: number, reason: string) =>
    eventually(`endpoint ${name} used by ${n} (${reason})`, async () => {
      const s = await epStatus(name);
      return s?.pipelines === n && s.conditions?.find((c) => c.type === "Ready")?.reason === reason ? s : undefined;
    });
  const config = async (gw: string) =>
    Object.values(
      (
        JSON.parse(await kubectl(["get", "configmap", `${gw}-harmony-config`, "-n", ns, "-o", "json"])) as {
          data?: Record<string, string>;
        }
      ).data ?? {},
    ).join("\n");
  const serves = (gw: string, prefix: string, yes = true) =>
    eventually(`${gw}'s config ${yes ? "with" : "without"} ${prefix}`, async () =>
      (await config(gw)).includes(`"${prefix}"`) === yes ? true : undefined,
    );
  const gateway = (name: string) => cr("HarmonyGateway", ns, name, { networks: [{ name: "web", port: 8080 }] });

  await apply(
    gateway("g1"),
    gateway("g2"),
    endpoint(ns, "ep-a"),
    endpoint(ns, "ep-b"),
    pipeline(ns, "p1", "g1", ["ep-a"]),
    pipeline(ns, "p2", "g2", ["ep-b"]),
    pipeline(ns, "p3", "g1", ["ep-a"]),
  );
  await usedBy("ep-a", 2, "InUse");
  await usedBy("ep-b", 1, "InUse");

  // p3 moves to ep-b: ep-b now has a user on g1, and its next edit must reach g1's config too.
  await apply(pipeline(ns, "p3", "g1", ["ep-b"]));
  await usedBy("ep-a", 1, "InUse");
  await usedBy("ep-b", 2, "InUse");
  await apply(endpoint(ns, "ep-b", "/b2"));
  await serves("g1", "/b2");
  await serves("g2", "/b2");

  // p2 deleted: ep-b's only user left is on g1; g2 serves ep-b no more.
  await kubectl(["delete", "harmonypipeline", "p2", "-n", ns]);
  await usedBy("ep-b", 1, "InUse");
  await apply(endpoint(ns, "ep-b", "/b3"));
  await serves("g1", "/b3");
  await serves("g2", "/b2", false);
  await serves("g2", "/b3", false);

  // The rest deleted: both endpoints unused.
  await kubectl(["delete", "harmonypipeline", "p1", "p3", "-n", ns]);
  await usedBy("ep-a", 0, "Unused");
  await usedBy("ep-b", 0, "Unused");
});
