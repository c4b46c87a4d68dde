/**
 * What a Harmony resource can be refused for at admission: everything the data plane's own checker
 * can tell from the resource alone, in spec paths, with unknown option keys as errors. What only
 * the cluster can know (Secrets and referenced resources that exist or not, route conflicts with
 * other pipelines) stays with the status conditions, so the checks here use placeholders for it.
 */
import { posix } from "node:path";
import { checkConfig, memoryFs } from "@harmony/dataplane";
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline, HarmonyResource } from "../api/v1alpha1.js";
import { checkEndpoint } from "../translator/endpoint.js";
import type { HarmonyNetwork } from "../api/network.js";
import { checkNetwork } from "./network.js";
import { gatewaySpecIssues } from "../translator/gateway-checks.js";
import { CONFIG_DIR, mountedReader, pipelineKey, renderMain, renderPipeline } from "../translator/render.js";
import { formatIssue, type SpecIssue } from "../translator/spec-paths.js";

export interface Verdict {
  /** Problems that refuse the resource, as `<spec path>: <message>`. */
  errors: string[];
  /** Data-plane warnings, passed on to the client (kubectl prints them). */
  warnings: string[];
}

const PLACEHOLDER_SECRET = Buffer.from("harmony-admission-placeholder");

export function validateResource(obj: HarmonyResource | HarmonyNetwork): Verdict {
  switch (obj.kind) {
    case "HarmonyNetwork":
      return verdict(checkNetwork(obj));
    case "HarmonyEndpoint":
      return verdict(checkEndpoint(obj).issues);
    case "HarmonyGateway":
      return verdict(checkGateway(obj));
    case "HarmonyPipeline":
      return verdict(checkPipeline(obj));
    default:
      return { errors: [], warnings: [] };
  }
}

/** Unknown option keys refuse: the data plane would ignore them, and a misspelt security option would be off. */
function verdict(issues: SpecIssue[]): Verdict {
  const refuses = (i: SpecIssue) => i.severity === "error" || i.unknownOption;
  return {
    errors: issues.filter(refuses).map(formatIssue),
    warnings: issues.filter((i) => !refuses(i)).map(formatIssue),
  };
}

/** config.toml as the gateway renders it, alone. */
function checkGateway(gw: HarmonyGateway): SpecIssue[] {
  // The CRD's CEL rules say the same; these hold where the CRDs are older than the operator.
  const unusable = gatewaySpecIssues(gw).map((text) => {
    const [path, ...rest] = text.split(": ");
    return { path: path!, message: rest.join(": "), severity: "error" as const, secret: false, unknownOption: false };
  });
  if (unusable.length) return unusable;
  // Refused at apply time too, not only reported (RefNotPermitted) once stored.
  const ns = gw.metadata.namespace ?? "default";
  const foreign = gw.spec.networks.flatMap((n, i) =>
    (n.tls?.certificateRefs ?? []).flatMap((r, j) =>
      r.namespace !== undefined && r.namespace !== ns
        ? [
            {
              path: `spec.networks[${i}].tls.certificateRefs[${j}].namespace`,
              message: `only the gateway's own namespace ("${ns}") is allowed`,
              severity: "error" as const,
              secret: false,
              unknownOption: false,
            },
          ]
        : [],
    ),
  );
  if (foreign.length) return foreign;
  const main = renderMain(gw, []);
  const file = posix.join(CONFIG_DIR, "config.toml");
  const r = checkConfig(file, { fs: memoryFs({ [file]: main.toml }) });
  return r.problems.map((p) => main.paths.issue(p));
}

/**
 * The pipeline rendered as its gateway would render it, with a stand-in for each endpoint (each
 * HarmonyEndpoint is checked at its own admission) and for each Secret value.
 */
function checkPipeline(p: HarmonyPipeline): SpecIssue[] {
  const ns = p.metadata.namespace ?? "default";
  const pipeline: HarmonyPipeline = {
    ...p,
    metadata: { ...p.metadata, namespace: ns, name: p.metadata.name ?? "new" },
  };
  const networks = p.spec.networks?.length ? p.spec.networks : ["web"];
  const stand = (name: string, i: number): HarmonyEndpoint => ({
    apiVersion: p.apiVersion,
    kind: "HarmonyEndpoint",
    metadata: { name, namespace: ns },
    spec: { service: "http", pathPrefix: `/admission-placeholder-${i}` },
  });
  const names = p.spec.endpoints.map((e) => e.name);
  const parts = [...(p.spec.middleware ?? []), ...p.spec.backends];
  const refs = [
    ...parts.flatMap((m) => m.secretOptions ?? []),
    ...parts.flatMap((m) =>
      (m.fileOptions ?? []).flatMap((f) => (f.secretKeyRef ? [{ secretKeyRef: f.secretKeyRef }] : [])),
    ),
  ];
  const cmRefs = parts.flatMap((m) =>
    (m.fileOptions ?? []).flatMap((f) => (f.configMapKeyRef ? [f.configMapKeyRef] : [])),
  );
  const r = renderPipeline(
    pipeline,
    networks,
    (_ns, name) => stand(name, names.indexOf(name)),
    (_ns, name) => ({
      data: Object.fromEntries(
        refs.filter((so) => so.secretKeyRef.name === name).map((so) => [so.secretKeyRef.key, PLACEHOLDER_SECRET]),
      ),
      revision: "admission",
    }),
    (_ns, name) => ({
      data: Object.fromEntries(
        cmRefs.filter((c) => c.name === name).map((c) => [c.key, "harmony-admission-placeholder"]),
      ),
      revision: "admission",
    }),
  );
  if ("failure" in r) {
    return [{ path: "spec", message: r.failure.message, severity: "error", secret: false, unknownOption: false }];
  }
  const gw: HarmonyGateway = {
    apiVersion: p.apiVersion,
    kind: "HarmonyGateway",
    metadata: { name: "admission", namespace: ns },
    spec: { networks: networks.map((name, i) => ({ name, port: 10_000 + i })), management: { port: 9090 } },
  };
  const key = pipelineKey(pipeline);
  const files = { "config.toml": renderMain(gw, []).toml, [key]: r.toml };
  const check = checkConfig(posix.join(CONFIG_DIR, "config.toml"), {
    fs: memoryFs(Object.fromEntries(Object.entries(files).map(([k, v]) => [posix.join(CONFIG_DIR, k), v]))),
    readFile: mountedReader({ ...files, ...r.configFiles }, r.secrets),
  });
  const hasSecrets = refs.length + cmRefs.length > 0;
  return (
    check.problems
      .filter((x) => posix.basename(x.file) === key)
      .map((x) => r.paths.issue(x))
      // A stand-in value proves nothing about the real one; the stand-in endpoints are not the user's.
      .filter((i) => !i.secret && !i.path.startsWith("HarmonyEndpoint "))
      .filter((i) => !(hasSecrets && i.message.startsWith("cannot start:")))
  );
}
