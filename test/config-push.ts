/**
 * The config push rig shared by test/operator-config-source.test.ts and bench/config-push: the
 * real operator on the real apiserver, one gateway with `pipelines` HarmonyPipelines, and a real
 * data plane that runs as the gateway's own ServiceAccount (the token the operator's RoleBinding
 * grants) with `--config-source`. The mounted files are written once, as the kubelet would at pod
 * start, and never again: whatever the data plane serves after that came through the API.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { writeAtomically } from "./syncer.js";
import {
  ROOT,
  eventually,
  freePort,
  startDataplane,
  startUpstream,
  tempDir,
  type Dataplane,
} from "../dataplane/test/helpers.js";
import { writeKubeconfig } from "./kubeconfig.js";

/**
 * A gateway's config as the pod sees it: the main ConfigMap's data, and when its manifest names
 * shards (README: Large gateways), theirs beside it; undefined while a shard is missing or not at
 * the manifest's digest (the operator is still writing).
 */
export async function readConfigTree(
  kubectl: (args: string[]) => Promise<string>,
  ns: string,
  main: string,
): Promise<Record<string, string> | undefined> {
  const get = async (name: string) =>
    (JSON.parse(await kubectl(["get", "configmap", name, "-n", ns, "-o", "json"])) as { data?: Record<string, string> })
      .data ?? {};
  const data = await get(main);
  const manifest = data["harmony-shards.json"];
  if (!manifest) return data;
  const tree = { ...data };
  for (const [name, digest] of Object.entries((JSON.parse(manifest) as { shards: Record<string, string> }).shards)) {
    const shard = await get(name).catch(() => undefined);
    if (shard?.[`${name}.sha256`] !== digest) return undefined;
    Object.assign(tree, shard);
  }
  return tree;
}

export interface PushRig {
  cp: ControlPlane;
  dp: Dataplane;
  ns: string;
  webPort: number;
  operatorLog: () => string;
  /** Stops the operator (a test then writes ConfigMaps by hand without it undoing them). */
  stopOperator: () => Promise<void>;
  /** A fresh operator process (no memory of earlier renders). */
  startOperator: () => void;
  kubectl: (args: string[], input?: string) => Promise<string>;
  stop: () => Promise<void>;
}

export async function startPushRig(opts: { pipelines?: number; cp?: ControlPlane } = {}): Promise<PushRig> {
  const n = opts.pipelines ?? 1;
  const cp = opts.cp ?? (await startControlPlane());
  const stops: (() => Promise<unknown>)[] = [];
  if (!opts.cp) stops.push(() => cp.stop());
  let log = "";
  const kubectl = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  try {
    await cp.installCrds();
    const upstream = await startUpstream((req, res) => res.end(`upstream ${req.url}`));
    stops.push(() => upstream.close());
    let op: ChildProcess | undefined;
    const startOperator = () => {
      op = spawn(
        process.execPath,
        [
          join(ROOT, "operator/dist/main.js"),
          ...["--kubeconfig", cp.kubeconfig, "--leader-elect", "false", "--health-port", "0", "--log-level", "info"],
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      op.stdout!.setEncoding("utf8").on("data", (c: string) => (log = (log + c).slice(-200_000)));
      op.stderr!.setEncoding("utf8").on("data", (c: string) => (log = (log + c).slice(-200_000)));
    };
    const stopOperator = async () => {
      if (op && op.exitCode === null && op.signalCode === null) {
        op.kill("SIGTERM");
        await once(op, "exit");
      }
    };
    startOperator();
    stops.unshift(stopOperator);
    const ns = "push";
    const webPort = await freePort();
    const mgmtPort = await freePort();
    await kubectl(["create", "namespace", ns]);
    const items: unknown[] = [
      {
        apiVersion: "harmony.runbeam.io/v1alpha1",
        kind: "HarmonyGateway",
        metadata: { name: "edge", namespace: ns },
        spec: { networks: [{ name: "web", port: webPort, bindAddress: "127.0.0.1" }], management: { port: mgmtPort } },
      },
    ];
    for (let i = 0; i < n; i++) {
      const id = String(i).padStart(4, "0");
      items.push(
        {
          apiVersion: "harmony.runbeam.io/v1alpha1",
          kind: "HarmonyEndpoint",
          metadata: { name: `ep-${id}`, namespace: ns },
          spec: { service: "http", pathPrefix: `/p${id}` },
        },
        {
          apiVersion: "harmony.runbeam.io/v1alpha1",
          kind: "HarmonyPipeline",
          metadata: { name: `pl-${id}`, namespace: ns },
          spec: {
            gatewayRef: { name: "edge" },
            endpoints: [{ name: `ep-${id}` }],
            backends: [{ service: "http", url: upstream.url }],
          },
        },
      );
    }
    for (let i = 0; i < items.length; i += 500) {
      await kubectl(
        ["apply", "--server-side", "-f", "-"],
        JSON.stringify({ apiVersion: "v1", kind: "List", items: items.slice(i, i + 500) }),
      );
    }
    const context = () => `operator log:\n${log.slice(-4000)}`;
    // The pod's start: the files as the kubelet mounts them, the ServiceAccount's token.
    const tree = await eventually(
      `the config with ${n} pipeline(s)`,
      async () => {
        const t = await readConfigTree(kubectl, ns, "edge-harmony-config").catch(() => undefined);
        return t && Object.keys(t).filter((k) => k.startsWith("pipeline.")).length === n ? t : undefined;
      },
      { timeoutMs: 300_000 + n * 100, intervalMs: 1000, context },
    );
    await eventually("the gateway's RoleBinding", () => kubectl(["get", "rolebinding", "edge-harmony", "-n", ns]), {
      timeoutMs: 60_000,
      context,
    });
    const dir = tempDir();
    const secretDir = join(dir, "secrets");
    mkdirSync(secretDir);
    writeAtomically(join(dir, "config"), tree, 1);
    const token = (await kubectl(["create", "token", "edge-harmony", "-n", ns, "--duration=1h"])).trim();
    const kubeconfig = writeKubeconfig(join(dir, "kubeconfig"), { server: cp.server, caPem: cp.caPem, token });
    const dp = await startDataplane(
      join(dir, "config", "config.toml"),
      {},
      [
        "--config-source",
        `kubernetes://${ns}/edge-harmony-config?secret=edge-harmony-secrets&secretDir=${secretDir}`,
        "--kubeconfig",
        kubeconfig,
      ],
      // Building thousands of pipelines at start takes time in proportion.
      15_000 + n * 10,
    );
    stops.unshift(() => dp.stop());
    return {
      cp,
      dp,
      ns,
      webPort,
      kubectl,
      operatorLog: () => log,
      stopOperator,
      startOperator,
      async stop() {
        for (const s of stops) await s().catch(() => undefined);
      },
    };
  } catch (e) {
    for (const s of stops) await s().catch(() => undefined);
    throw e;
  }
}
