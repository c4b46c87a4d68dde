/**
 * End to end without a kubelet or syncer: a HarmonyEndpoint edit reaches a data plane that runs as
 * the gateway's ServiceAccount only through the Kubernetes API (the files were written once).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startPushRig, type PushRig } from "./config-push.js";
import { eventually, http } from "../dataplane/test/helpers.js";

let rig: PushRig | undefined;
after(() => rig?.stop());

test("a CR edit is served through the API, with no file change and the operator's own RBAC objects", async () => {
  rig = await startPushRig({ pipelines: 2 });
  const { dp, ns, webPort, kubectl } = rig;
  const url = (p: string) => `http://127.0.0.1:${webPort}${p}`;
  assert.equal((await http(url("/p0000/x"))).text, "upstream /x");
  const deploy = JSON.parse(await kubectl(["get", "deployment", "edge-harmony", "-n", ns, "-o", "json"])) as {
    spec: {
      template: {
        spec: { serviceAccountName: string; automountServiceAccountToken: boolean; containers: { args: string[] }[] };
      };
    };
  };
  const pod = deploy.spec.template.spec;
  assert.equal(pod.serviceAccountName, "edge-harmony");
  assert.equal(pod.automountServiceAccountToken, true);
  assert.deepEqual(pod.containers[0]!.args.slice(2), [
    "--config-source",
    `kubernetes://${ns}/edge-harmony-config?secret=edge-harmony-secrets&secretDir=/etc/harmony/secrets`,
  ]);
  const sa = JSON.parse(await kubectl(["get", "serviceaccount", "edge-harmony", "-n", ns, "-o", "json"])) as {
    automountServiceAccountToken: boolean;
  };
  assert.equal(sa.automountServiceAccountToken, false, "only the gateway's pods mount its token");

  await kubectl([
    "patch",
    "harmonyendpoint",
    "ep-0001",
    "-n",
    ns,
    "--type=merge",
    "-p",
    JSON.stringify({ spec: { pathPrefix: "/moved" } }),
  ]);
  await eventually("the edit to be served", async () => (await http(url("/moved/y"))).status === 200, {
    timeoutMs: 60_000,
    context: () => rig!.operatorLog().slice(-3000),
  });
  assert.equal((await http(url("/p0001/y"))).status, 404);
  // The admin API wants a token off loopback: the log and /readyz say what is served, and from where.
  const loaded = dp.logs.filter((l) => l.message === "config loaded").pop()!;
  assert.equal(loaded.source, "kubernetes");
  assert.equal(loaded.trigger, "kubernetes");
  const ready = (await http(`http://127.0.0.1:${dp.ports.management}/readyz`)).json() as { config_hash: string };
  // The hash the operator wrote is the one the data plane serves: same bytes as the files would be.
  await eventually("the operator's hash", async () => {
    const s = JSON.parse(await kubectl(["get", "harmonygateway", "edge", "-n", ns, "-o", "json"])) as {
      status?: { configHash?: string };
    };
    return s.status?.configHash === ready.config_hash;
  });
});
