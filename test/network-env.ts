/**
 * One "cluster" for the HarmonyNetwork tests and bench: a real control plane (test/controlplane)
 * with the CRDs, and the operator running as a host process against it. Reads go straight to the
 * apiserver over HTTPS (no kubectl spawn per poll, which costs a second on a loaded box).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { request } from "node:https";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { ROOT, freePort } from "../dataplane/test/helpers.js";

export const OPERATOR_NS = "harmony-system";

export interface Cluster {
  name: string;
  cp: ControlPlane;
  operator: ChildProcess;
  /** The operator's /healthz, /readyz and /metrics port. */
  healthPort: number;
  log: () => string;
  kubectl(args: string[], input?: string): Promise<string>;
  /** Server-side apply of objects (as one List). */
  apply(...items: object[]): Promise<void>;
  /** GET an API path; undefined on 404. */
  get<T>(path: string): Promise<T | undefined>;
  /** One key of a Secret, decoded; undefined when either is missing. */
  secretKey(ns: string, name: string, key: string): Promise<string | undefined>;
  stopOperator(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `prepare` runs before the operator starts (namespaces, RBAC); a path it returns is the
 * operator's kubeconfig instead of the admin's (an operator with exactly some RBAC).
 */
export async function startCluster(
  name: string,
  extraArgs: string[] = [],
  prepare?: (cp: ControlPlane, kubectl: (args: string[], input?: string) => Promise<string>) => Promise<string | void>,
): Promise<Cluster> {
  const cp = await startControlPlane();
  await cp.installCrds();
  const kubectl = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, input);
    if (r.code !== 0) throw new Error(`[${name}] kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  await kubectl(["create", "namespace", OPERATOR_NS]);
  const operatorKubeconfig =
    (await prepare?.(cp, kubectl).catch(async (e: unknown) => {
      await cp.stop(); // nothing else would: the caller gets no Cluster to stop
      throw e;
    })) || cp.kubeconfig;
  const get = <T>(path: string) =>
    new Promise<T | undefined>((resolve, reject) => {
      const req = request(
        new URL(path, cp.server),
        { ca: cp.caPem, headers: { authorization: `Bearer ${cp.token}`, accept: "application/json" } },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (c: string) => (body += c));
          res.on("end", () => {
            if (res.statusCode === 404) return resolve(undefined);
            if (res.statusCode !== 200) return reject(new Error(`GET ${path}: ${res.statusCode} ${body}`));
            resolve(JSON.parse(body) as T);
          });
        },
      );
      req.on("error", reject);
      req.end();
    });
  let log = "";
  const healthPort = await freePort();
  const operator = spawn(
    process.execPath,
    [
      join(ROOT, "operator/dist/main.js"),
      "--kubeconfig",
      operatorKubeconfig,
      "--leader-elect",
      "false",
      "--health-port",
      String(healthPort),
      "--network-namespace",
      OPERATOR_NS,
      "--cluster-name",
      name,
      "--log-level",
      "debug",
      ...extraArgs,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout.setEncoding("utf8").on("data", (c: string) => (log += c));
  operator.stderr.setEncoding("utf8").on("data", (c: string) => (log += c));
  const stopOperator = async () => {
    if (operator.exitCode === null && operator.signalCode === null) {
      operator.kill("SIGTERM");
      await once(operator, "exit");
    }
  };
  return {
    name,
    cp,
    operator,
    healthPort,
    log: () => log,
    kubectl,
    apply: async (...items) =>
      void (await kubectl(
        ["apply", "--server-side", "--force-conflicts", "-f", "-"],
        JSON.stringify({ apiVersion: "v1", kind: "List", items }),
      )),
    get,
    async secretKey(ns, secret, key) {
      const s = await get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${ns}/secrets/${secret}`);
      const v = s?.data?.[key];
      return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
    },
    stopOperator,
    async stop() {
      await stopOperator();
      await cp.stop();
    },
  };
}

export const cr = (kind: string, ns: string | undefined, name: string, spec: object, extraMeta: object = {}) => ({
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind,
  metadata: { name, ...(ns ? { namespace: ns } : {}), ...extraMeta },
  spec,
});

/** A gateway with the network listener `harmony`, dialled at 127.0.0.1 (the annotation). */
export const memberGateway = (ns: string, name: string, port: number) =>
  cr(
    "HarmonyGateway",
    ns,
    name,
    { networks: [{ name: "harmony", port }] },
    { annotations: { "harmony.runbeam.io/network-address": "127.0.0.1" } },
  );

/** An endpoint and the pipeline that serves it on `gateway`. */
export const served = (ns: string, gateway: string, endpoint: string, spec: object) => [
  cr("HarmonyEndpoint", ns, endpoint, spec),
  cr("HarmonyPipeline", ns, `${endpoint}-pl`, {
    gatewayRef: { name: gateway },
    endpoints: [{ name: endpoint }],
    // A DIMSE endpoint bridges to DICOMweb; the others speak their own protocol upstream.
    backends: [
      {
        service: (spec as { service: string }).service === "dicom" ? "dicomweb" : (spec as { service: string }).service,
        url: "http://127.0.0.1:1",
      },
    ],
  }),
];

/** Splits a PEM bundle into its certificates. */
export const pems = (bundle: string) =>
  bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
