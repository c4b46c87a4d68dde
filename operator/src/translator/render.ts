/**
 * Translates one gateway and the resources that attach to it into data-plane config: a ConfigMap
 * (`config.toml` plus one flat `pipeline.<ns>.<name>.toml` key per pipeline, which the loader
 * picks up from the same directory) and a Secret (values of `secretOptions`, mounted as files).
 *
 * The render is validated with the data plane's own checker over an in-memory copy of exactly the
 * tree the pod will see. A pipeline with problems is reported and left out; the others still
 * render. Output is deterministic: same inputs, same bytes, same hash.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import TOML from "@iarna/toml";
import { checkConfig, memoryFs, formatProblem, type Problem } from "@harmony/dataplane";
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline } from "../api/v1alpha1.js";
import { endpointOptions } from "./endpoint.js";

/** Where the gateway's pods mount what the operator writes. */
export const CONFIG_DIR = "/etc/harmony/config";
export const SECRET_DIR = "/etc/harmony/secrets";
export const MANAGEMENT_NETWORK = "management";

export type SecretLookup = (namespace: string, name: string) => Record<string, Buffer> | undefined;

export interface PipelineOutcome {
  namespace: string;
  name: string;
  generation: number | undefined;
  /** True when the pipeline is part of the render. */
  programmed: boolean;
  /** Which condition failed and why, when not programmed. */
  failure?: { condition: "Accepted" | "ResolvedRefs"; reason: string; message: string };
}

export interface RenderResult {
  /** ConfigMap data. */
  files: Record<string, string>;
  /** Secret data. */
  secrets: Record<string, Buffer>;
  /** What the data plane reports as its config hash once it has loaded these files. */
  hash: string;
  pipelines: PipelineOutcome[];
  /** Problems in the gateway's own part (config.toml); nothing is written while there are any. */
  gatewayProblems: string[];
}

type Table = Record<string, unknown>;

export const pipelineKey = (p: HarmonyPipeline) => `pipeline.${p.metadata.namespace}.${p.metadata.name}.toml`;
const id = (p: HarmonyPipeline, part?: string) =>
  [p.metadata.namespace, p.metadata.name, ...(part ? [part] : [])].join(".");

export function render(
  gateway: HarmonyGateway,
  pipelines: HarmonyPipeline[],
  endpoints: (namespace: string, name: string) => HarmonyEndpoint | undefined,
  secrets: SecretLookup,
): RenderResult {
  const outcomes = new Map<string, PipelineOutcome>();
  const files: Record<string, string> = {};
  const secretData: Record<string, Buffer> = {};
  const sorted = [...pipelines].sort((a, b) => id(a).localeCompare(id(b)));

  const gatewayNetworks = gateway.spec.networks.map((n) => n.name);
  for (const p of sorted) {
    const outcome: PipelineOutcome = {
      namespace: p.metadata.namespace ?? "",
      name: p.metadata.name ?? "",
      generation: p.metadata.generation,
      programmed: false,
    };
    outcomes.set(id(p), outcome);
    const r = renderPipeline(p, gatewayNetworks, endpoints, secrets);
    if ("failure" in r) {
      outcome.failure = r.failure;
      continue;
    }
    files[pipelineKey(p)] = r.toml;
    Object.assign(secretData, r.secrets);
  }

  // Validate, dropping pipelines the data plane would reject until the rest is clean.
  let main = renderMain(gateway, secretData);
  for (let pass = 0; pass <= sorted.length; pass++) {
    files["config.toml"] = main;
    const check = checkConfig(posix.join(CONFIG_DIR, "config.toml"), {
      fs: memoryFs(Object.fromEntries(Object.entries(files).map(([k, v]) => [posix.join(CONFIG_DIR, k), v]))),
      readFile: (path) => {
        const key = path.startsWith(SECRET_DIR + "/") ? path.slice(SECRET_DIR.length + 1) : undefined;
        const v = key === undefined ? undefined : secretData[key];
        if (!v) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
        return v;
      },
    });
    // The data plane loads a Harmony config that names a type it lacks, with a warning, and leaves
    // that pipeline out; a resource asking for one is still refused here, so its status says so.
    const errors = check.problems.filter(
      (x) => x.severity === "error" || /not available in this build/.test(x.message),
    );
    if (errors.length === 0) {
      for (const o of outcomes.values()) if (!o.failure) o.programmed = true;
      return {
        files: { ...files },
        secrets: secretData,
        hash: check.hash,
        pipelines: [...outcomes.values()],
        gatewayProblems: [],
      };
    }
    const byFile = groupByFile(errors);
    const gatewayErrors = byFile.get("config.toml");
    if (gatewayErrors) {
      return {
        files: {},
        secrets: {},
        hash: "",
        pipelines: [...outcomes.values()],
        gatewayProblems: gatewayErrors.map(describe),
      };
    }
    for (const [file, problems] of byFile) {
      let p = sorted.find((x) => pipelineKey(x) === file);
      if (!p) continue;
      // Two pipelines claiming one route: the older keeps it (Gateway API's rule), whichever the
      // loader happened to read first.
      const claimant = /already claimed by pipeline "([^"]+)"/.exec(problems.map((x) => x.message).join(" "))?.[1];
      const other = claimant ? sorted.find((x) => id(x) === claimant) : undefined;
      if (other && problems.every((x) => /already claimed/.test(x.message)) && olderFirst(p, other) < 0) {
        const loser = other;
        const winner = p;
        p = loser;
        problems.splice(0, problems.length, {
          ...problems[0]!,
          message: `route claimed by older pipeline ${winner.metadata.namespace}/${winner.metadata.name}`,
        });
      }
      delete files[pipelineKey(p)];
      for (const k of Object.keys(secretData)) if (k.startsWith(id(p) + ".")) delete secretData[k];
      outcomes.get(id(p))!.failure = {
        condition: "Accepted",
        reason: reasonFor(problems),
        message: problems.map(describe).join("; "),
      };
    }
    main = renderMain(gateway, secretData);
  }
  throw new Error("render did not converge"); // unreachable: each pass removes at least one file
}

/** Creation order, then name: the order in which conflicting claims are honoured. */
function olderFirst(a: HarmonyPipeline, b: HarmonyPipeline): number {
  const ta = a.metadata.creationTimestamp ?? "";
  const tb = b.metadata.creationTimestamp ?? "";
  return ta !== tb ? ta.localeCompare(tb) : id(a).localeCompare(id(b));
}

function groupByFile(problems: Problem[]): Map<string, Problem[]> {
  const m = new Map<string, Problem[]>();
  for (const p of problems) {
    const f = posix.basename(p.file);
    m.set(f, [...(m.get(f) ?? []), p]);
  }
  return m;
}

/** A problem as a pipeline's status shows it: the data plane's key path, not our generated names. */
const describe = (p: Problem) => formatProblem({ ...p, file: posix.basename(p.file) });

function reasonFor(problems: Problem[]): string {
  const text = problems.map((p) => p.message).join(" ");
  if (/claimed by/.test(text)) return "RouteConflict";
  if (/unknown (endpoint service|backend service|middleware type)|not available in this build/.test(text))
    return "UnsupportedValue";
  return "InvalidOptions";
}

function renderMain(gateway: HarmonyGateway, secrets: Record<string, Buffer>): string {
  const spec = gateway.spec;
  const network: Table = {};
  for (const n of spec.networks)
    network[n.name] = { http: { bind_address: n.bindAddress ?? "0.0.0.0", bind_port: n.port } };
  network[MANAGEMENT_NETWORK] = { http: { bind_address: "0.0.0.0", bind_port: spec.management?.port ?? 9090 } };
  const doc: Table = {
    proxy: { id: `${gateway.metadata.namespace}/${gateway.metadata.name}`, pipelines_path: "." },
    logging: { log_level: spec.logLevel ?? "info" },
    management: { enabled: true, network: MANAGEMENT_NETWORK, base_path: spec.management?.basePath ?? "/admin" },
    network,
  };
  // Secret values live in files; their digest sits here so a changed Secret changes the config
  // hash, the data plane reloads, and Ready can tell when the new values are live.
  const digest = createHash("sha256");
  for (const k of Object.keys(secrets).sort()) digest.update(k).update("\0").update(secrets[k]!).update("\0");
  const header =
    `# Rendered by the Harmony operator from HarmonyGateway ${gateway.metadata.namespace}/${gateway.metadata.name}; do not edit.\n` +
    (Object.keys(secrets).length ? `# secrets sha256:${digest.digest("hex")}\n` : "");
  return header + toToml(doc);
}

type PipelineRender =
  { toml: string; secrets: Record<string, Buffer> } | { failure: NonNullable<PipelineOutcome["failure"]> };

function renderPipeline(
  p: HarmonyPipeline,
  gatewayNetworks: string[],
  endpoints: (namespace: string, name: string) => HarmonyEndpoint | undefined,
  secrets: SecretLookup,
): PipelineRender {
  const ns = p.metadata.namespace ?? "";
  const spec = p.spec;
  const networks = spec.networks ?? gatewayNetworks;
  const unknown = networks.filter((n) => !gatewayNetworks.includes(n));
  if (unknown.length) {
    return {
      failure: {
        condition: "Accepted",
        reason: "UnknownNetwork",
        message: `spec.networks: gateway has no network ${unknown.map((n) => `"${n}"`).join(", ")} (it has ${gatewayNetworks.join(", ")})`,
      },
    };
  }
  const secretFiles: Record<string, Buffer> = {};
  const withSecrets = (
    field: string,
    options: Record<string, unknown> | undefined,
    secretOptions: { option: string; secretKeyRef: { name: string; key: string } }[] | undefined,
    part: string,
  ): Record<string, unknown> | { failure: NonNullable<PipelineOutcome["failure"]> } => {
    const out: Record<string, unknown> = { ...(options ?? {}) };
    for (const [i, so] of (secretOptions ?? []).entries()) {
      const data = secrets(ns, so.secretKeyRef.name);
      const value = data?.[so.secretKeyRef.key];
      if (!value) {
        return {
          failure: {
            condition: "ResolvedRefs",
            reason: "SecretNotFound",
            message: `${field}.secretOptions[${i}]: ${data ? `key "${so.secretKeyRef.key}" not in` : "no"} Secret ${ns}/${so.secretKeyRef.name}`,
          },
        };
      }
      const key = `${id(p, part)}.${so.option}`;
      secretFiles[key] = value;
      out[`${so.option}_file`] = posix.join(SECRET_DIR, key);
    }
    return out;
  };

  const doc: Table = { pipelines: {}, endpoints: {}, middleware: {}, backends: {} };
  const endpointNames: string[] = [];
  for (const [i, ref] of spec.endpoints.entries()) {
    const ep = endpoints(ns, ref.name);
    if (!ep) {
      return {
        failure: {
          condition: "ResolvedRefs",
          reason: "EndpointNotFound",
          message: `spec.endpoints[${i}]: HarmonyEndpoint ${ns}/${ref.name} not found`,
        },
      };
    }
    const name = id(p, `endpoint.${ref.name}`);
    endpointNames.push(name);
    (doc.endpoints as Table)[name] = { service: ep.spec.service, options: endpointOptions(ep.spec) };
  }
  const middlewareNames: string[] = [];
  for (const [i, m] of (spec.middleware ?? []).entries()) {
    const options = withSecrets(`spec.middleware[${i}]`, m.options, m.secretOptions, `middleware.${m.name}`);
    if ("failure" in options) return options as { failure: NonNullable<PipelineOutcome["failure"]> };
    const name = id(p, `middleware.${m.name}`);
    middlewareNames.push(name);
    (doc.middleware as Table)[name] = { type: m.type, options };
  }
  const b = spec.backends[0]!;
  const backendOptions = withSecrets("spec.backends[0]", b.options, b.secretOptions, "backend");
  if ("failure" in backendOptions) return backendOptions as { failure: NonNullable<PipelineOutcome["failure"]> };
  if (b.url !== undefined) backendOptions.base_url = b.url;
  const backendName = id(p, "backend");
  (doc.backends as Table)[backendName] = { service: b.service, options: backendOptions };
  (doc.pipelines as Table)[id(p)] = {
    description: spec.description ?? `HarmonyPipeline ${ns}/${p.metadata.name}`,
    networks,
    endpoints: endpointNames,
    middleware: middlewareNames,
    backends: [backendName],
  };
  for (const k of ["endpoints", "middleware", "backends"]) if (Object.keys(doc[k] as Table).length === 0) delete doc[k];
  return {
    toml: `# HarmonyPipeline ${ns}/${p.metadata.name}\n` + toToml(doc),
    secrets: secretFiles,
  };
}

/** Sorted keys, and integers without @iarna/toml's digit separators (9_090) for people reading them. */
function toToml(doc: Table): string {
  return TOML.stringify(sortKeys(doc) as TOML.JsonMap).replace(
    /^(\s*\S.* = )(-?\d{1,3}(?:_\d{3})+)$/gm,
    (_m, k: string, n: string) => k + n.replace(/_/g, ""),
  );
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    const out: Table = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Table)[k]);
    return out;
  }
  return v;
}
