/**
 * Turns a loaded document into the model the runtime uses, checking everything that can be
 * checked without opening a socket: schema, references, plugin options, route and port clashes.
 * Both layouts (0.4 and newer) end up in one shape here; nothing downstream knows the difference.
 */
import { createSecureContext } from "node:tls";
import { DEFAULT_PARSE_LIMITS, type ParseLimits } from "../pipeline/body-parse.js";
import { DEFAULT_PATH_NORMALIZATION, type PathNormalization } from "../pipeline/canonical-path.js";
import type { HarmonyConfig, LogLevel, PipelineSection } from "./schema.js";
import { checkConfigSchema, checkOptions } from "./schema-check.js";
import { displayPath, type Problem } from "./problems.js";
import { idleTcpConfigs, resolveReferences } from "./references.js";
import { notUsed } from "./not-used.js";
import type { LoadedConfig } from "./load.js";
import type { HarmonyNetwork } from "../network/config.js";
import type { Registry } from "../plugins/registry.js";
import type { AnyPlugin, BuildContext, OptionProblem } from "../plugins/types.js";

export interface ListenerSpec {
  address: string;
  port: number;
  /** Absolute paths, checked to form a usable certificate and key at load. */
  certPath?: string;
  keyPath?: string;
  /**
   * The pair as this build read it: from the API's revision when that is the source, where the
   * kubelet's mount can lack the files for a minute. The listener starts with it; the paths are
   * what it re-reads on rotation.
   */
  cert?: Buffer;
  key?: Buffer;
  http2?: boolean;
  certReloadMs?: number;
  /** More certificates by SNI server name (lower-cased; `*.suffix` wildcards); absolute paths, and the pair as read. */
  sni?: { hostname: string; certPath: string; keyPath: string; cert: Buffer; key: Buffer }[];
  /** Redirect everything to https on this port. */
  forceHttpsPort?: number;
  /** Time allowed for a request's headers (slowloris defence). */
  headersTimeoutMs?: number;
  /**
   * `harmony_network`: the inter-gateway listener of that network. certPath/keyPath are its
   * identity; a client certificate is requested and verified against this trust bundle.
   */
  harmony?: { network: string; caPath: string };
}

export interface ResolvedPipeline {
  name: string;
  description: string;
  networks: string[];
  endpoints: string[];
  backend: string | undefined;
  /** Middleware instance names, request side, in run order. */
  left: string[];
  /** Middleware instance names, response side, in run order. */
  right: string[];
}

export interface ResolvedPlugin {
  name: string;
  plugin: AnyPlugin;
  options: Record<string, unknown>;
}

export interface ResolvedConfig {
  id: string;
  logLevel: LogLevel;
  accessLog: boolean;
  logFile: string | undefined;
  bodyLimit: number;
  /** Client body timeout (pipeline/body-timeout.ts). */
  bodyTimeout: { idleMs: number; minRate: number };
  jsonDepthLimit: number;
  parseLimits: ParseLimits;
  shutdownTimeoutMs: number;
  /** SIGTERM → stop listening: served meanwhile, not ready, Connection: close (runtime/gateway.ts). */
  drainDelayMs: number;
  /** How request paths are made canonical (`proxy.path_normalization`). */
  pathNormalization: PathNormalization;
  management:
    | { enabled: false }
    | {
        enabled: true;
        basePath: string;
        network: string;
        token: string | undefined;
        tokenSource: string | undefined;
        /** management.allowed_hosts as written. */
        allowedHosts: string[];
      };
  networks: Map<string, ListenerSpec | undefined>;
  /** `[harmony_networks.*]` that loaded. */
  harmonyNetworks: ReadonlyMap<string, HarmonyNetwork>;
  pipelines: ResolvedPipeline[];
  endpoints: Map<string, ResolvedPlugin>;
  backends: Map<string, ResolvedPlugin>;
  middleware: Map<string, ResolvedPlugin>;
  /** The merged document, for /admin/config (redacted there). */
  document: HarmonyConfig;
}

/** Types the Harmony format documents; named in errors so "not built yet" reads differently from a typo. */
const HARMONY_MIDDLEWARE_TYPES = new Set([
  "jwtauth",
  "jwt_auth",
  "basic_auth",
  "api_key",
  "policies",
  "path_filter",
  "transform",
  "metadata_transform",
  "json_extractor",
  "json",
  "log_dump",
  "webhook",
  "dicomweb_bridge",
  "dicomweb",
  "dicom_flatten",
  "dicom_unflatten",
  "jmix_builder",
  "connect",
  "mesh_auth",
  "cookie_auth",
]);

/** Service types the Harmony docs describe; one missing here is "not available", not a typo. */
const HARMONY_SERVICE_TYPES = new Set([
  "http",
  "echo",
  "fhir",
  "jmix",
  "dicomweb",
  "dicom",
  "dicom_scp",
  "dicom_scu",
  "management",
  "mock_dicom",
  "storage",
  "http3",
  "jmix_backend",
]);

export const DEFAULT_BODY_LIMIT = 10 * 1024 * 1024;

type Path = (string | number)[];
type BuildCtxFactory = (name: string) => BuildContext;

export function resolveConfig(
  loaded: LoadedConfig,
  registry: Registry,
  buildCtx: BuildCtxFactory,
  env: NodeJS.ProcessEnv = process.env,
): {
  config: ResolvedConfig | undefined;
  problems: Problem[];
  /** Ports endpoints listen on by themselves (DIMSE), as bound here: for a check across files. */
  ownPorts: { endpoint: string; port: number }[];
} {
  const problems: Problem[] = [...loaded.problems];
  const at = (path: Path, message: string, severity: Problem["severity"] = "error") => {
    problems.push({ severity, ...loaded.locate(path), path: displayPath(path), message });
  };
  const ownPorts: { endpoint: string; port: number }[] = [];
  if (problems.some((p) => p.severity === "error" && p.path === "")) {
    return { config: undefined, problems, ownPorts }; // Syntax errors: nothing below would be meaningful.
  }

  for (const issue of checkConfigSchema(loaded.raw)) {
    at(issue.path, issue.message, issue.unknownKey ? "warning" : "error");
  }
  const doc = loaded.raw as HarmonyConfig;
  for (const n of notUsed(doc)) at(n.path, n.message, "warning");

  const proxy = doc.proxy ?? {};
  const id = proxy.id ?? proxy.name;
  if (!id) at(["proxy"], "proxy.id (0.4 layout) or proxy.name (newer layout) is required");

  const logging = doc.logging ?? {};
  if (logging.log_to_file && !logging.log_file_path)
    at(["logging", "log_file_path"], "is required when log_to_file = true");

  // Harmony networks (identity, trust bundle, directory), then the networks and their listeners.
  const harmonyCtx = buildCtx("harmony_networks");
  const harmonyNetworks = harmonyCtx.harmonyNetworks();
  for (const p of harmonyCtx.harmonyNetworkProblems()) at(p.path, p.message);
  const networks = new Map<string, ListenerSpec | undefined>();
  const bound = new Map<number, string>();
  for (const [name, net] of Object.entries(doc.network ?? {})) {
    if (net.enable_wireguard)
      at(["network", name, "enable_wireguard"], "WireGuard is not implemented; the flag is ignored", "warning");
    if (net.http3)
      at(
        ["network", name, "http3"],
        "HTTP/3 is not available in this build (Node has no QUIC); this listener is not started",
        "warning",
      );
    if (net.harmony_network !== undefined && !doc.harmony_networks?.[net.harmony_network])
      at(["network", name, "harmony_network"], `[harmony_networks.${net.harmony_network}] is not defined`);
    const http = net.http;
    if (!http) {
      networks.set(name, undefined);
      continue;
    }
    const spec: ListenerSpec = {
      address: http.bind_address ?? "0.0.0.0",
      port: http.bind_port ?? 8080,
      headersTimeoutMs: doc.proxy?.client_header_timeout_ms ?? 60_000,
    };
    if (http.cert_path || http.key_path) {
      if (!http.cert_path || !http.key_path) {
        at(["network", name, "http", http.cert_path ? "key_path" : "cert_path"], "cert_path and key_path go together");
      } else {
        const ctx = buildCtx(`network.${name}`);
        try {
          const pair = { cert: ctx.readFile(http.cert_path), key: ctx.readFile(http.key_path) };
          createSecureContext(pair);
          spec.certPath = ctx.resolvePath(http.cert_path);
          spec.keyPath = ctx.resolvePath(http.key_path);
          Object.assign(spec, pair);
          spec.http2 = http.http2 ?? true;
          spec.certReloadMs = http.cert_reload_ms ?? 5000;
          const sni = resolveSni(http.sni ?? [], ctx, (sub, m) => at(["network", name, "http", "sni", ...sub], m));
          if (sni.length) spec.sni = sni;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          at(
            ["network", name, "http", code === "ENOENT" ? "cert_path" : "key_path"],
            code === "ENOENT"
              ? `cannot read the certificate or key: ${(e as Error).message.replace(/^ENOENT: /, "")}`
              : `certificate and key are not usable together: ${(e as Error).message}`,
          );
        }
      }
      if (http.force_https)
        at(["network", name, "http", "force_https"], "redirects apply to plain listeners only", "warning");
    } else if (http.force_https) {
      spec.forceHttpsPort = http.https_port ?? 443;
    }
    if (http.sni?.length && !(http.cert_path && http.key_path))
      at(["network", name, "http", "sni"], "needs cert_path and key_path: the certificate for names no entry matches");
    if (net.harmony_network !== undefined) {
      const hn = harmonyNetworks.get(net.harmony_network);
      if (http.cert_path || http.force_https)
        at(
          ["network", name, "http"],
          "cert_path, key_path and force_https are not used: the listener serves the network identity certificate",
          "warning",
        );
      delete spec.forceHttpsPort;
      delete spec.sni; // one identity: the network's
      if (hn) {
        spec.certPath = hn.certPath;
        spec.keyPath = hn.keyPath;
        // The network's identity comes from its own files (and setTls after each build), not http's.
        delete spec.cert;
        delete spec.key;
        // HTTP/1.1 only: peers are other gateways' keep-alive pools, and one protocol keeps the
        // per-connection identity check in one place.
        spec.http2 = false;
        // No polling of its own: the gateway hands it the material each config build validated.
        spec.certReloadMs = 0;
        spec.harmony = { network: hn.name, caPath: hn.bundlePath };
      }
    }
    if (spec.port !== 0) {
      const other = bound.get(spec.port);
      if (other) at(["network", name, "http", "bind_port"], `port ${spec.port} is already used by ${other}`);
      else bound.set(spec.port, `network "${name}"`);
    }
    networks.set(name, spec);
  }

  // Management.
  let management: ResolvedConfig["management"] = { enabled: false };
  const mg = doc.management;
  if (mg?.enabled) {
    const network = mg.network;
    if (!network) at(["management", "network"], "is required when management is enabled");
    else if (!networks.has(network)) at(["management", "network"], `network "${network}" is not defined`);
    else if (!networks.get(network))
      at(["management", "network"], `network "${network}" has no [network.${network}.http] listener`);
    let token: string | undefined = mg.token;
    let tokenSource: string | undefined = mg.token ? "management.token" : undefined;
    if (mg.token_env) {
      token = env[mg.token_env];
      tokenSource = `$${mg.token_env}`;
      if (!token) at(["management", "token_env"], `environment variable ${mg.token_env} is not set`);
    } else if (mg.token_file) {
      try {
        token = buildCtx("management").readFile(mg.token_file).toString("utf8").trim();
        tokenSource = mg.token_file;
      } catch (e) {
        at(["management", "token_file"], `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
    }
    const basePath = "/" + (mg.base_path ?? "admin").replace(/^\/+|\/+$/g, "");
    if (basePath === "/") at(["management", "base_path"], "must not be empty");
    const allowedHosts = mg.allowed_hosts ?? [];
    if (network) management = { enabled: true, basePath, network, token, tokenSource, allowedHosts };
  }

  // 0.4 registration tables: harmless unless they ask for something we cannot load.
  for (const [table, known] of [
    ["services", (t: string) => registry.endpoint(t) ?? registry.backend(t)],
    ["middleware_types", (t: string) => registry.middleware(t)],
  ] as const) {
    for (const [type, reg] of Object.entries(doc[table] ?? {})) {
      if (reg.module)
        at([table, type, "module"], 'dynamic modules are not supported; use a built-in type (module = "")');
      else if (!known(type) && type !== "management")
        at([table, type], `"${type}" is not available in this build; registration ignored`, "warning");
    }
  }

  const ownListener = (service: string | undefined) => {
    const plugin = service ? registry.endpoint(service) : undefined;
    return plugin?.ownListener ? plugin : undefined;
  };
  const isOwnListener = (service: string | undefined) => ownListener(service) !== undefined;
  // target_ref, targets, peer_ref and tcp_config filled into each entry's options (references.ts).
  const refs = resolveReferences(doc, registry, isOwnListener);
  for (const p of refs.problems) at(p.path, p.message, p.severity);
  const brokenRefs = refs.broken;
  const connected = refs.options;
  /** `table\0name` of entries whose type Harmony documents but this build lacks. */
  const unavailable = new Set<string>();
  const endpoints = resolvePlugins("endpoints", doc.endpoints ?? {}, (t) => registry.endpoint(t), "endpoint service");
  const backends = resolvePlugins("backends", doc.backends ?? {}, (t) => registry.backend(t), "backend service");
  // Endpoints with listeners of their own (DIMSE) share the port space with the networks.
  // Read from the unvalidated options, so a clash is reported even when other options are wrong too.
  for (const [name, e] of Object.entries(doc.endpoints ?? {})) {
    const port: unknown = ownListener(e.service)?.listenPort?.(connected.get(`endpoints\0${name}`) ?? {});
    if (typeof port !== "number" || port === 0) continue;
    const other = bound.get(port);
    if (other) at(["endpoints", name, "options", "port"], `port ${port} is already used by ${other}`);
    else {
      bound.set(port, `endpoint "${name}"`);
      ownPorts.push({ endpoint: name, port });
    }
  }
  for (const p of idleTcpConfigs(doc, isOwnListener)) at(p.path, p.message, "warning");
  const middleware = new Map<string, ResolvedPlugin>();
  for (const [name, inst] of Object.entries(doc.middleware ?? {})) {
    const r = resolvePlugin(
      ["middleware", name],
      name,
      inst.type,
      inst.options,
      registry.middleware(inst.type),
      "middleware type",
      registry.middlewareTypes(),
    );
    if (r) middleware.set(name, r);
  }

  function resolvePlugins(
    table: "endpoints" | "backends",
    entries: Record<string, { service: string; options?: Record<string, unknown> }>,
    find: (t: string) => AnyPlugin | undefined,
    what: string,
  ) {
    const out = new Map<string, ResolvedPlugin>();
    const available =
      table === "endpoints"
        ? registry.serviceTypes().filter((t) => registry.endpoint(t))
        : registry.serviceTypes().filter((t) => registry.backend(t));
    for (const [name, entry] of Object.entries(entries)) {
      const key = `${table}\0${name}`;
      if (brokenRefs.has(key)) continue; // its reference is reported; "base_url is required" would only repeat it
      const options = connected.get(key) ?? entry.options;
      const r = resolvePlugin([table, name], name, entry.service, options, find(entry.service), what, available);
      if (r) out.set(name, r);
    }
    return out;
  }

  function resolvePlugin(
    path: Path,
    name: string,
    type: string | undefined,
    rawOptions: Record<string, unknown> | undefined,
    plugin: AnyPlugin | undefined,
    what: string,
    available: string[],
  ): ResolvedPlugin | undefined {
    if (typeof type !== "string") return undefined; // Already reported by the schema.
    const documented = (what === "middleware type" ? HARMONY_MIDDLEWARE_TYPES : HARMONY_SERVICE_TYPES).has(
      type.toLowerCase(),
    );
    if (!plugin && documented) {
      // A Harmony feature this build lacks: the config still loads (make check passes), and what
      // depends on it is left out, loudly. Never served half-built: see resolvePipeline.
      unavailable.add(`${String(path[0])}\0${name}`);
      at(
        [...path, what === "middleware type" ? "type" : "service"],
        `${what} "${type}" is not available in this build; pipelines using "${name}" are not served`,
        "warning",
      );
      return undefined;
    }
    if (!plugin) {
      at(
        [...path, what === "middleware type" ? "type" : "service"],
        `unknown ${what} "${type}" (available: ${available.join(", ")})`,
      );
      return undefined;
    }
    const options = structuredClone(rawOptions ?? {});
    let ok = true;
    for (const issue of checkOptions(plugin.options, options)) {
      at([...path, "options", ...issue.path], issue.message, issue.unknownKey ? "warning" : "error");
      if (!issue.unknownKey) ok = false;
    }
    if (plugin.check) {
      // Run even after schema errors so every problem shows in one pass; a check that trips over
      // a wrongly typed option has nothing to add to the schema's message.
      let found: OptionProblem[] = [];
      try {
        found = plugin.check(options, buildCtx(name));
      } catch {
        found = [];
      }
      for (const p of found) {
        at([...path, "options", ...p.path], p.message, p.severity ?? "error");
        if ((p.severity ?? "error") === "error") ok = false;
      }
    }
    return ok ? { name, plugin, options } : undefined;
  }

  // Pipelines.
  const pipelines: ResolvedPipeline[] = [];
  for (const [name, p] of Object.entries(doc.pipelines ?? {})) {
    const r = resolvePipeline(name, p);
    if (r) pipelines.push(r);
  }

  /**
   * `[pipelines.X.mesh.ingress.<n>]` / `.egress.<n>` that an enabled `[mesh.<m>]` lists become
   * mesh_auth middleware instances (named `mesh:<pipeline>:<role>:<n>`).
   */
  function resolveMesh(name: string, p: PipelineSection): { first: string[]; last: string[] } | undefined {
    const out = { first: [] as string[], last: [] as string[] };
    const section = p.mesh as Record<string, Record<string, Record<string, unknown>>> | undefined;
    if (!section) return out;
    const meshes = Object.entries((doc as { mesh?: Record<string, Record<string, unknown>> }).mesh ?? {});
    let fine = true;
    for (const role of ["ingress", "egress"] as const) {
      for (const [n, entry] of Object.entries(section[role] ?? {})) {
        if (entry.enabled === false) continue;
        const path = ["pipelines", name, "mesh", role, n];
        const owner = meshes.find(
          ([, m]) => m.enabled !== false && Array.isArray(m[role]) && (m[role] as unknown[]).includes(n),
        );
        if (!owner) {
          at(path, `no enabled [mesh.*] lists "${n}" in its ${role}`);
          fine = false;
          continue;
        }
        if (role === "ingress" && (!Array.isArray(entry.urls) || entry.urls.length === 0)) {
          at([...path, "urls"], "an ingress needs urls (where mesh members reach it)");
          fine = false;
          continue;
        }
        const instance = `mesh:${name}:${role}:${n}`;
        const plugin = registry.middleware("mesh_auth")!;
        const r = resolvePlugin(
          path,
          instance,
          "mesh_auth",
          {
            mesh: owner[0],
            role,
            mode: entry.mode ?? "default",
            source: doc.proxy?.id ?? doc.proxy?.name ?? "harmony",
          },
          plugin,
          "middleware type",
          registry.middlewareTypes(),
        );
        if (!r) {
          fine = false;
          continue;
        }
        middleware.set(instance, r);
        (role === "ingress" ? out.first : out.last).push(instance);
      }
    }
    return fine ? out : undefined;
  }

  function resolvePipeline(name: string, p: PipelineSection): ResolvedPipeline | undefined {
    const path = ["pipelines", name];
    if (p.enabled === false) return undefined;
    if (!Array.isArray(p.endpoints)) return undefined; // schema reported it
    const nets = p.networks ?? [];
    const listensOnItsOwn = p.endpoints.some((e) => ownListener(doc.endpoints?.[e]?.service) !== undefined);
    if (nets.length === 0 && !listensOnItsOwn) {
      at([...path, "networks"], "no networks: the pipeline is not served", "warning");
      return undefined;
    }
    if (p.endpoints.length === 0) {
      at([...path, "endpoints"], "no endpoints: the pipeline is not served", "warning");
      return undefined;
    }
    let ok = true;
    const err = (sub: Path, message: string) => {
      at([...path, ...sub], message);
      ok = false;
    };
    // A network without an HTTP listener can still carry DIMSE endpoints (tcp_config or their own
    // port); only endpoints that need the HTTP listener make it a problem.
    const httpEndpoints = p.endpoints.filter((e) => !ownListener(doc.endpoints?.[e]?.service));
    let served = httpEndpoints.length < p.endpoints.length;
    nets.forEach((n, i) => {
      if (!networks.has(n)) err(["networks", i], `network "${n}" is not defined`);
      else if (networks.get(n)) served = true;
      else if (httpEndpoints.length > 0 && doc.network?.[n]?.http3)
        at(
          [...path, "networks", i],
          `network "${n}" has only an HTTP/3 listener, which this build does not start; ${httpEndpoints.join(", ")} not served there`,
          "warning",
        );
      else if (httpEndpoints.length > 0)
        err(["networks", i], `network "${n}" has no HTTP listener (endpoints ${httpEndpoints.join(", ")} need one)`);
    });
    if (ok && !served) return undefined; // only HTTP/3 networks: warned above, nothing to serve
    /** What this pipeline needs that this build does not have (each already warned about). */
    const missing: string[] = [];
    const failed = (table: string, n: string) => {
      if (unavailable.has(`${table}\0${n}`)) missing.push(n);
      else ok = false; // its own problem is already reported
    };
    p.endpoints.forEach((e, i) => {
      if (!doc.endpoints?.[e]) err(["endpoints", i], `endpoint "${e}" is not defined`);
      else if (!endpoints.has(e)) failed("endpoints", e);
    });
    const backendNames = p.backends ?? [];
    backendNames.forEach((b, i) => {
      if (!doc.backends?.[b]) err(["backends", i], `backend "${b}" is not defined`);
      else if (!backends.has(b)) failed("backends", b);
    });
    if (backendNames.length > 1)
      at([...path, "backends"], "only the first backend is called; the others are ignored", "warning");

    let left: string[];
    let right: string[];
    const mw = p.middleware ?? [];
    if (Array.isArray(mw)) {
      left = [...mw];
      right = [...mw].reverse(); // one list: the response passes back through it like an onion
    } else {
      left = [...(mw.left ?? [])];
      right = [...(mw.right ?? [])];
    }
    const checkMw = (list: string[], side: Path) =>
      list.forEach((m, i) => {
        if (middleware.has(m)) return;
        if (doc.middleware?.[m]) {
          failed("middleware", m); // reported on the instance
          return;
        }
        // 0.4 compatibility: a bare type name stands for that type with default options.
        const plugin = registry.middleware(m);
        if (plugin) {
          const r = resolvePlugin(["middleware", m], m, m, {}, plugin, "middleware type", registry.middlewareTypes());
          if (r) middleware.set(m, r);
          else ok = false;
        } else if (HARMONY_MIDDLEWARE_TYPES.has(m.toLowerCase())) {
          missing.push(m);
        } else {
          err(
            [...side, i],
            `middleware "${m}" is not defined (no [middleware.${m}] and no built-in type of that name)`,
          );
        }
      });
    if (Array.isArray(mw)) checkMw(left, ["middleware"]);
    else {
      checkMw(left, ["middleware", "left"]);
      checkMw(right, ["middleware", "right"]);
    }
    for (const e of p.endpoints) {
      const need = endpoints.get(e)?.plugin;
      const required = need?.kind === "endpoint" ? need.requiresMiddleware : undefined;
      if (!required) continue;
      const has = (list: string[]) => list.some((m) => middleware.get(m)?.plugin.type === required);
      if (!has(left) || !has(right))
        err(["middleware"], `endpoint "${e}" (${need!.type}) needs a "${required}" middleware in this pipeline`);
    }
    // Mesh: ingress verification runs first, egress signing last, on the request side.
    const mesh = resolveMesh(name, p);
    if (mesh === undefined) ok = false;
    else {
      left = [...mesh.first, ...left, ...mesh.last];
    }
    if (!ok) return undefined;
    if (missing.length > 0) {
      at(
        path,
        `not served: it uses ${[...new Set(missing)].map((m) => `"${m}"`).join(", ")}, not available in this build`,
        "warning",
      );
      return undefined;
    }
    return {
      name,
      description: p.description ?? "",
      networks: [...nets],
      endpoints: [...p.endpoints],
      backend: backendNames[0],
      left,
      right,
    };
  }

  const limits = proxy.content_limits ?? {};
  const config: ResolvedConfig = {
    id: id ?? "",
    logLevel: logging.log_level ?? proxy.log_level ?? "info",
    accessLog: logging.access_log ?? true,
    logFile: logging.log_to_file ? logging.log_file_path : undefined,
    bodyLimit: limits.max_body_size ?? DEFAULT_BODY_LIMIT,
    bodyTimeout: { idleMs: proxy.client_body_timeout_ms ?? 60_000, minRate: proxy.client_body_min_rate ?? 500 },
    jsonDepthLimit: limits.max_json_depth ?? 100,
    parseLimits: {
      maxXmlDepth: limits.max_xml_depth ?? DEFAULT_PARSE_LIMITS.maxXmlDepth,
      maxCsvRows: limits.max_csv_rows ?? DEFAULT_PARSE_LIMITS.maxCsvRows,
      maxMultipartFiles: limits.max_multipart_files ?? DEFAULT_PARSE_LIMITS.maxMultipartFiles,
      maxFormFields: limits.max_form_fields ?? DEFAULT_PARSE_LIMITS.maxFormFields,
    },
    shutdownTimeoutMs: proxy.shutdown_timeout_ms ?? 30_000,
    drainDelayMs: proxy.drain_delay_ms ?? 0,
    pathNormalization: {
      encodedSlash: proxy.path_normalization?.encoded_slash ?? DEFAULT_PATH_NORMALIZATION.encodedSlash,
      semicolon: proxy.path_normalization?.semicolon ?? DEFAULT_PATH_NORMALIZATION.semicolon,
      caseInsensitive: proxy.path_normalization?.case_insensitive ?? DEFAULT_PATH_NORMALIZATION.caseInsensitive,
    },
    management,
    networks,
    harmonyNetworks,
    pipelines,
    endpoints,
    backends,
    middleware,
    document: doc,
  };
  return { config, problems, ownPorts };
}

/** Each `sni` entry's pair, checked to load like cert_path/key_path; problems go to `at`. */
function resolveSni(
  entries: { hostname: string; cert_path: string; key_path: string }[],
  ctx: BuildContext,
  at: (path: (string | number)[], message: string) => void,
): NonNullable<ListenerSpec["sni"]> {
  const out: NonNullable<ListenerSpec["sni"]> = [];
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    const hostname = e.hostname.toLowerCase();
    if (seen.has(hostname)) return at([i, "hostname"], `"${hostname}" is listed twice`);
    seen.add(hostname);
    try {
      const pair = { cert: ctx.readFile(e.cert_path), key: ctx.readFile(e.key_path) };
      createSecureContext(pair);
      out.push({ hostname, certPath: ctx.resolvePath(e.cert_path), keyPath: ctx.resolvePath(e.key_path), ...pair });
    } catch (err) {
      at([i], `certificate and key do not load: ${(err as Error).message}`);
    }
  });
  return out;
}
