/**
 * Runs a gateway's data plane the way its pod would (no kubelet in tests): every ConfigMap/Secret
 * volume of the Deployment the operator rendered mirrored at its mount path (re-rooted under a temp
 * dir) by test/syncer.ts, config from the container's `--config`. The API config source is left
 * out: a host process has no ServiceAccount token. (The same steps as network-e2e.test.ts's.)
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join, posix } from "node:path";
import { startDataplane, tempDir, type Dataplane } from "../dataplane/test/helpers.js";
import type { Cluster } from "./network-env.js";
import { startSyncer } from "./syncer.js";

/** Where the pod's volumes hang (the operator's CONFIG_DIR, SECRET_DIR and NET_DIR are below it). */
const POD_ROOT = "/etc/harmony";

interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; items?: { key: string; path: string }[] };
}
interface PodSpec {
  volumes: Volume[];
  containers: { args: string[]; volumeMounts: { name: string; mountPath: string }[] }[];
}

export async function runGatewayPod(
  c: Cluster,
  ns: string,
  gw: string,
  opts: {
    stops: (() => unknown)[];
    eventually: <T>(what: string, fn: () => Promise<T | undefined | false>) => Promise<T>;
  },
): Promise<Dataplane> {
  const spec = await opts.eventually(`${gw} Deployment with its network volume`, async () => {
    const d = await c.get<{ spec: { template: { spec: PodSpec } } }>(
      `/apis/apps/v1/namespaces/${ns}/deployments/${gw}-harmony`,
    );
    const s = d?.spec.template.spec;
    return s && s.volumes.some((v) => v.name === "harmony-net") && s;
  });
  const root = tempDir(`harmony-pod-${gw}-`);
  const kc = (args: string[]) => spawn("kubectl", ["--kubeconfig", c.cp.kubeconfig, ...args], { env: c.cp.env });
  const synced: (() => number)[] = [];
  for (const m of spec.containers[0]!.volumeMounts) {
    const v = spec.volumes.find((x) => x.name === m.name)!;
    const dir = join(root, posix.relative(POD_ROOT, m.mountPath));
    assert.ok(!dir.startsWith(".."), `${m.mountPath} is under ${POD_ROOT}`);
    const items = v.secret?.items && Object.fromEntries(v.secret.items.map((i) => [i.key, i.path]));
    const s = v.configMap
      ? startSyncer(kc, ns, v.configMap.name, dir)
      : v.secret
        ? startSyncer(kc, ns, v.secret.secretName, dir, "secret", items)
        : undefined;
    if (!s) continue;
    opts.stops.push(() => s.stop());
    // The gateway's own Secret exists only when a pipeline has secret options: not awaited.
    if (v.configMap || v.name === "harmony-net") synced.push(() => s.swaps());
  }
  const config = spec.containers[0]!.args[spec.containers[0]!.args.indexOf("--config") + 1]!;
  await opts.eventually(`${gw}'s volumes synced`, () => Promise.resolve(synced.every((n) => n() > 0)));
  const dp = await startDataplane(join(root, posix.relative(POD_ROOT, config)), { HARMONY_POLL_MS: "200" });
  opts.stops.push(() => dp.stop());
  return dp;
}
