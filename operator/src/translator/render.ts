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
import type { TSchema } from "@sinclair/typebox";
import { posix } from "node:path";
import TOML from "@iarna/toml";
import { createRegistry, memoryFs, type Problem } from "@harmony/dataplane";
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline } from "../api/v1alpha1.js";
import { ENDPOINT_FIELDS, endpointOptions } from "./endpoint.js";
import { SpecPaths, formatIssue } from "./spec-paths.js";
import { gatewaySpecIssues } from "./gateway-checks.js";
import {
  mountedPath,
  resolveFileOption,
  setOption,
  type ConfigMapLookup,
  type FileOptionSpec,
  type SecretLookup,
} from "./file-options.js";
import { planTls, type TlsPlan } from "./gateway-tls.js";
import { RenderCache, pipelineInputs, type PipelineFailure, type PipelineRender } from "./render-cache.js";

import { CONFIG_DIR, MANAGEMENT_NETWORK, SECRET_DIR } from "./mounts.js";

export { CONFIG_DIR, MANAGEMENT_NETWORK, SECRET_DIR } from "./mounts.js";
/**
 * The data plane's shutdown on SIGTERM (README: Data-plane workload, "Rolling updates"): this long
 * still serving while not ready, so kube-proxy on every node drops the pod before it stops
 * listening (Envoy Gateway waits 10 s at least, ingress-nginx 10 s)...
 */
export const DRAIN_DELAY_MS = 5_000;
/** ...then this long for requests in flight (the data plane's own default). */
export const SHUTDOWN_TIMEOUT_MS = 30_000;

export type { SecretRevision, SecretLookup, ConfigMapLookup } from "./file-options.js";

/** Option schemas of the plugins, for "did you mean". */
const registry = createRegistry();

export interface PipelineOutcome {
  namespace: string;
  name: string;
  generation: number | undefined;
  /** True when the pipeline is part of the render. */
  programmed: boolean;
  /** Which condition failed and why, when not programmed. */
  failure?: PipelineFailure;
  /** Data-plane warnings about the pipeline, in spec paths. */
  warnings?: string[];
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
  /** Networks left out because their certificate cannot be had (the others still serve). */
  unavailableNetworks: Map<string, { reason: string; message: string }>;
  /**
   * Per programmed pipeline ("ns/name"), a digest of everything its serving depends on: its own
   * files (TOML, fileOptions, secretOptions) and the gateway's part (config.toml without its
   * comments). Configs with other hashes that carry the same digest serve it the same way.
   */
  parts: Map<string, string>;
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
  configMaps: ConfigMapLookup = () => undefined,
  /**
   * The gateway's HarmonyNetwork share (network/gateway-files.ts): `decorate` adds its keys to
   * config.toml, `mounted` holds the files those keys name, by mounted path, for the check below.
   */
  network?: {
    decorate: (doc: Table) => void;
    mounted: Readonly<Record<string, Buffer>>;
    /** Network listeners whose workload certificate does not exist yet: left out like a TLS listener without its Secret. */
    unavailable?: ReadonlyMap<string, { reason: string; message: string }>;
  },
  /**
   * Kept per gateway, so that a render renders and checks again only what changed (with the same
   * verdicts as checking the whole tree). A fresh one does everything.
   */
  cache: RenderCache = new RenderCache(),
): RenderResult {
  const unusable = gatewaySpecIssues(gateway);
  if (unusable.length) {
    const pipelines_ = pipelines.map((p) => ({
      namespace: p.metadata.namespace ?? "",
      name: p.metadata.name ?? "",
      generation: p.metadata.generation,
      programmed: false,
    }));
    return {
      files: {},
      secrets: {},
      hash: "",
      pipelines: pipelines_,
      gatewayProblems: unusable,
      unavailableNetworks: new Map(),
      parts: new Map(),
    };
  }
  const tls = planTls(gateway, secrets);
  for (const [n, u] of network?.unavailable ?? []) if (!tls.unavailable.has(n)) tls.unavailable.set(n, u);
  const outcomes = new Map<string, PipelineOutcome>();
  const files: Record<string, string> = {};
  const secretData: Record<string, Buffer> = {};
  /** Per file: how its keys map back to spec paths, and which Secret revisions it uses. */
  const paths = new Map<string, SpecPaths>();
  const revisions = new Map<string, string[]>();
  /** Per pipeline file: the extra files (fileOptions) it brought, to drop with it. */
  const extras = new Map<string, { config: string[]; secrets: string[] }>();
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
    const r = cache.part(id(p), pipelineInputs(p, endpoints, gatewayNetworks, tls.unavailable), () =>
      renderPipeline(p, gatewayNetworks, endpoints, secrets, configMaps, tls.unavailable),
    );
    if ("failure" in r) {
      outcome.failure = r.failure;
      continue;
    }
    files[pipelineKey(p)] = r.toml;
    paths.set(pipelineKey(p), r.paths);
    revisions.set(pipelineKey(p), r.revisions);
    Object.assign(secretData, r.secrets);
    for (const [k, v] of Object.entries(r.configFiles)) files[k] = v;
    extras.set(pipelineKey(p), { config: Object.keys(r.configFiles), secrets: Object.keys(r.secrets) });
  }

  cache.keepOnly(new Set(sorted.map((p) => id(p))));

  // Validate, dropping pipelines the data plane would reject until the rest is clean.
  Object.assign(secretData, tls.files);
  const revisionsInUse = () => [...tls.revisions, ...Object.keys(files).flatMap((f) => revisions.get(f) ?? [])];
  let main = renderMain(gateway, revisionsInUse(), tls, network?.decorate);
  paths.set("config.toml", main.paths);
  for (let pass = 0; pass <= sorted.length; pass++) {
    files["config.toml"] = main.toml;
    const check = cache.checker.check(posix.join(CONFIG_DIR, "config.toml"), {
      fs: memoryFs(Object.fromEntries(Object.entries(files).map(([k, v]) => [posix.join(CONFIG_DIR, k), v]))),
      readFile: mountedReader(files, secretData, network?.mounted),
    });
    // The data plane loads a Harmony config that names a type it lacks, with a warning, and leaves
    // that pipeline out; a resource asking for one is still refused here, so its status says so.
    // An unknown option key is only a warning to the data plane, which then runs without it; a
    // misspelt `audience` would mean no audience check, so the pipeline is refused instead.
    const errors = check.problems.filter(
      (x) =>
        x.severity === "error" ||
        /not available in this build/.test(x.message) ||
        (x.message === "unknown key" && posix.basename(x.file) !== "config.toml"),
    );
    const describe = (x: Problem) => formatIssue(paths.get(posix.basename(x.file))?.issue(x) ?? fallback(x));
    if (errors.length === 0) {
      for (const o of outcomes.values()) if (!o.failure) o.programmed = true;
      // Warnings (unknown option keys above all) go on the pipeline's status: the data plane
      // ignores what it does not know, and the user should hear that a misspelt option is off.
      for (const x of check.problems) {
        const p = sorted.find((y) => pipelineKey(y) === posix.basename(x.file));
        const o = p && outcomes.get(id(p));
        if (o) o.warnings = [...(o.warnings ?? []), describe(x)];
      }
      return {
        files: { ...files },
        secrets: secretData,
        hash: check.hash,
        pipelines: [...outcomes.values()],
        gatewayProblems: [],
        unavailableNetworks: tls.unavailable,
        parts: partDigests(sorted, outcomes, files, secretData, extras),
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
        unavailableNetworks: tls.unavailable,
        parts: new Map(),
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
      for (const k of extras.get(pipelineKey(p))?.config ?? []) delete files[k];
      for (const k of extras.get(pipelineKey(p))?.secrets ?? []) delete secretData[k];
      // A misspelt option is often why a required one is missing: name both.
      const unknown = check.problems.filter(
        (x) => x.message === "unknown key" && posix.basename(x.file) === file && !problems.includes(x),
      );
      outcomes.get(id(p))!.failure = {
        condition: "Accepted",
        reason: reasonFor(problems),
        message: [...problems, ...(file === pipelineKey(p) ? unknown : [])].map(describe).join("; "),
      };
    }
    main = renderMain(gateway, revisionsInUse(), tls, network?.decorate);
  }
  throw new Error("render did not converge"); // unreachable: each pass removes at least one file
}

/** RenderResult.parts: what each programmed pipeline is served from, as a digest. */
function partDigests(
  sorted: HarmonyPipeline[],
  outcomes: ReadonlyMap<string, PipelineOutcome>,
  files: Readonly<Record<string, string>>,
  secretData: Readonly<Record<string, Buffer>>,
  extras: ReadonlyMap<string, { config: string[]; secrets: string[] }>,
): Map<string, string> {
  // The gateway's part without its comments: the Secret revisions listed there change with any
  // pipeline's Secret, which is no change to the others.
  const main = (files["config.toml"] ?? "")
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n");
  const out = new Map<string, string>();
  for (const p of sorted) {
    if (!outcomes.get(id(p))?.programmed) continue;
    const h = createHash("sha256")
      .update(main)
      .update("\0")
      .update(files[pipelineKey(p)] ?? "");
    const extra = extras.get(pipelineKey(p));
    for (const k of [...(extra?.config ?? [])].sort()) h.update(`\0${k}\0`).update(files[k] ?? "");
    for (const k of [...(extra?.secrets ?? [])].sort()) h.update(`\0${k}\0`).update(secretData[k] ?? "");
    out.set(`${p.metadata.namespace}/${p.metadata.name}`, h.digest("hex"));
  }
  return out;
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

/** A problem in a file we did not record paths for (none today): its key path as it is. */
const fallback = (p: Problem) => ({
  path: p.path || posix.basename(p.file),
  message: p.message,
  severity: p.severity,
  secret: false,
  unknownOption: false,
});

function reasonFor(problems: Problem[]): string {
  const text = problems.map((p) => p.message).join(" ");
  if (/claimed by/.test(text)) return "RouteConflict";
  if (/unknown (endpoint service|backend service|middleware type)|not available in this build/.test(text))
    return "UnsupportedValue";
  return "InvalidOptions";
}

/** config.toml: the gateway's own part. */
export function renderMain(
  gateway: HarmonyGateway,
  secretRevisions: string[],
  tls?: Pick<TlsPlan, "listeners" | "unavailable">,
  decorate?: (doc: Table) => void,
): { toml: string; paths: SpecPaths } {
  const spec = gateway.spec;
  const paths = new SpecPaths();
  const network: Table = {};
  for (const [i, n] of spec.networks.entries()) {
    // Never served without the TLS it asks for: left out until its certificate can be had.
    if (tls?.unavailable.has(n.name)) continue;
    const certs = tls?.listeners.get(n.name);
    network[n.name] = { http: { bind_address: n.bindAddress ?? "0.0.0.0", bind_port: n.port, ...certs } };
    for (const k of ["cert_path", "key_path"])
      paths.add(["network", n.name, "http", k], `spec.networks[${i}].tls.certificateRefs[0]`);
    paths.add(["network", n.name], `spec.networks[${i}]`);
    paths.add(["network", n.name, "http", "bind_address"], `spec.networks[${i}].bindAddress`);
    paths.add(["network", n.name, "http", "bind_port"], `spec.networks[${i}].port`);
  }
  // Set last: a network of this name (refused at admission) must not replace the management listener.
  network[MANAGEMENT_NETWORK] = { http: { bind_address: "0.0.0.0", bind_port: spec.management?.port ?? 9090 } };
  paths.add(["network", MANAGEMENT_NETWORK], "spec.management");
  paths.add(["network", MANAGEMENT_NETWORK, "http", "bind_port"], "spec.management.port");
  paths.add(["management", "base_path"], "spec.management.basePath");
  paths.add(["logging", "log_level"], "spec.logLevel");
  const doc: Table = {
    proxy: {
      id: `${gateway.metadata.namespace}/${gateway.metadata.name}`,
      pipelines_path: ".",
      drain_delay_ms: DRAIN_DELAY_MS,
      shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS,
    },
    logging: { log_level: spec.logLevel ?? "info" },
    management: { enabled: true, network: MANAGEMENT_NETWORK, base_path: spec.management?.basePath ?? "/admin" },
    network,
  };
  decorate?.(doc);
  // Secret values live in files; which revisions of the Secrets they came from sits here, so a
  // changed Secret changes the config hash, the data plane reloads, and Ready can tell when the new
  // values are live. Revisions (uid and resourceVersion), never the values: anyone who may read
  // ConfigMaps could test guesses against a digest of the values offline.
  const revisions = [...new Set(secretRevisions)].sort();
  const digest = createHash("sha256").update(revisions.join("\n")).digest("hex");
  const header =
    `# Rendered by the Harmony operator from HarmonyGateway ${gateway.metadata.namespace}/${gateway.metadata.name}; do not edit.\n` +
    (revisions.length ? `# secret revisions sha256:${digest}\n` : "");
  return { toml: header + toToml(doc), paths };
}

export type { PipelineRender } from "./render-cache.js";

/** Reads what the pods will have mounted, from the render itself: for the checker. */
export function mountedReader(
  files: Record<string, string>,
  secretData: Record<string, Buffer>,
  other: Readonly<Record<string, Buffer>> = {},
) {
  return (path: string): Buffer => {
    const inSecrets = path.startsWith(SECRET_DIR + "/") ? secretData[path.slice(SECRET_DIR.length + 1)] : undefined;
    const inConfig = path.startsWith(CONFIG_DIR + "/") ? files[path.slice(CONFIG_DIR.length + 1)] : undefined;
    const v = inSecrets ?? (inConfig === undefined ? undefined : Buffer.from(inConfig)) ?? other[path];
    if (!v) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    return v;
  };
}

export function renderPipeline(
  p: HarmonyPipeline,
  gatewayNetworks: string[],
  endpoints: (namespace: string, name: string) => HarmonyEndpoint | undefined,
  secrets: SecretLookup,
  configMaps: ConfigMapLookup = () => undefined,
  unavailableNetworks: ReadonlyMap<string, unknown> = new Map(),
): PipelineRender {
  const ns = p.metadata.namespace ?? "";
  const spec = p.spec;
  const asked = spec.networks ?? gatewayNetworks;
  const unknown = asked.filter((n) => !gatewayNetworks.includes(n));
  if (unknown.length) {
    return {
      failure: {
        condition: "Accepted",
        reason: "UnknownNetwork",
        message: `spec.networks: gateway has no network ${unknown.map((n) => `"${n}"`).join(", ")} (it has ${gatewayNetworks.join(", ")})`,
      },
    };
  }
  // A network whose certificate cannot be had is not in the config: serve on the others.
  const networks = asked.filter((n) => !unavailableNetworks.has(n));
  if (networks.length === 0) {
    return {
      failure: {
        condition: "ResolvedRefs",
        reason: "NetworkNotReady",
        message: `spec.networks: ${asked.map((n) => `"${n}"`).join(", ")} not served: the gateway's certificate for it cannot be used (see the HarmonyGateway's ResolvedRefs condition)`,
      },
    };
  }
  const secretFiles: Record<string, Buffer> = {};
  const configFiles: Record<string, string> = {};
  const revisions: string[] = [];
  const paths = new SpecPaths();
  const withSecrets = (
    table: string,
    tomlName: string,
    schema: TSchema | undefined,
    field: string,
    options: Record<string, unknown> | undefined,
    secretOptions: { option: string; secretKeyRef: { name: string; key: string } }[] | undefined,
    part: string,
    fileOptions: FileOptionSpec[] = [],
  ): Record<string, unknown> | { failure: NonNullable<PipelineOutcome["failure"]> } => {
    const out: Record<string, unknown> = { ...(options ?? {}) };
    paths.add([table, tomlName], field);
    paths.add([table, tomlName, "options"], `${field}.options`, { schema });
    for (const [i, so] of (secretOptions ?? []).entries()) {
      const found = secrets(ns, so.secretKeyRef.name);
      const data = found?.data;
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
      revisions.push(`${ns}/${so.secretKeyRef.name}@${found!.revision}`);
      out[`${so.option}_file`] = mountedPath(`${so.option}_file`, "secrets", key);
      for (const opt of [so.option, `${so.option}_file`]) {
        paths.add([table, tomlName, "options", opt], `${field}.secretOptions[${i}].option`, {
          schema,
          secretOption: so.option,
        });
      }
    }
    for (const [i, fo] of fileOptions.entries()) {
      const at = `${field}.fileOptions[${i}]`;
      const r = resolveFileOption(fo, at, ns, `${id(p, part)}.file.${fo.option}`, { secrets, configMaps });
      if ("failure" in r) return { failure: r.failure };
      const f = r.file;
      if (f.dir === "secrets") secretFiles[f.key] = f.content;
      else configFiles[f.key] = f.content.toString("utf8");
      // Inline content is the resource's own: its digest (never a Secret's) marks a change.
      revisions.push(f.revision ?? `inline@${createHash("sha256").update(f.content).digest("hex")}`);
      setOption(out, fo.option, mountedPath(fo.option, f.dir, f.key));
      // Problems with the file (not PEM, not a JOLT chain) point at the entry that brought it; a
      // Secret's or ConfigMap's content only the cluster can check (admission skips it).
      paths.add([table, tomlName, "options", ...fo.option.split(".")], at, {
        schema,
        external: fo.inline === undefined,
        fileOption: fo.option,
      });
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
    // The endpoint's options are the HarmonyEndpoint's, typed fields included (endpointOptions).
    const at = `HarmonyEndpoint ${ns}/${ref.name}: spec`;
    paths.add(["endpoints", name], `spec.endpoints[${i}]`);
    paths.add(["endpoints", name, "service"], `${at}.service`);
    paths.add(["endpoints", name, "options"], `${at}.options`, { schema: registry.endpoint(ep.spec.service)?.options });
    for (const [opt, field] of Object.entries(ENDPOINT_FIELDS))
      paths.add(["endpoints", name, "options", opt], `${at}.${field}`);
    (doc.endpoints as Table)[name] = { service: ep.spec.service, options: endpointOptions(ep.spec) };
  }
  const middlewareNames: string[] = [];
  for (const [i, m] of (spec.middleware ?? []).entries()) {
    const name = id(p, `middleware.${m.name}`);
    const schema = registry.middleware(m.type)?.options;
    const options = withSecrets(
      "middleware",
      name,
      schema,
      `spec.middleware[${i}]`,
      m.options,
      m.secretOptions,
      `middleware.${m.name}`,
      m.fileOptions,
    );
    if ("failure" in options) return options as { failure: NonNullable<PipelineOutcome["failure"]> };
    paths.add(["middleware", name, "type"], `spec.middleware[${i}].type`);
    middlewareNames.push(name);
    (doc.middleware as Table)[name] = { type: m.type, options };
  }
  const b = spec.backends[0]!;
  const backendName = id(p, "backend");
  const backendSchema = registry.backend(b.service)?.options;
  const backendOptions = withSecrets(
    "backends",
    backendName,
    backendSchema,
    "spec.backends[0]",
    b.options,
    b.secretOptions,
    "backend",
    b.fileOptions,
  );
  if ("failure" in backendOptions) return backendOptions as { failure: NonNullable<PipelineOutcome["failure"]> };
  if (b.url !== undefined) backendOptions.base_url = b.url;
  paths.add(["backends", backendName, "service"], "spec.backends[0].service");
  if (b.url !== undefined) paths.add(["backends", backendName, "options", "base_url"], "spec.backends[0].url");
  if (b.target !== undefined) {
    backendOptions.target = b.target;
    paths.add(["backends", backendName, "options", "target"], "spec.backends[0].target");
  }
  (doc.backends as Table)[backendName] = { service: b.service, options: backendOptions };
  (doc.pipelines as Table)[id(p)] = {
    description: spec.description ?? `HarmonyPipeline ${ns}/${p.metadata.name}`,
    networks,
    endpoints: endpointNames,
    middleware: middlewareNames,
    backends: [backendName],
  };
  paths.add(["pipelines", id(p)], "spec");
  paths.add(["pipelines", id(p), "networks"], "spec.networks");
  paths.add(["pipelines", id(p), "description"], "spec.description");
  for (const k of ["endpoints", "middleware", "backends"]) if (Object.keys(doc[k] as Table).length === 0) delete doc[k];
  return {
    toml: `# HarmonyPipeline ${ns}/${p.metadata.name}\n` + toToml(doc),
    secrets: secretFiles,
    configFiles,
    paths,
    revisions,
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
