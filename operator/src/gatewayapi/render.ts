/**
 * A Gateway API Gateway and the HTTPRoutes attached to it, rendered (pure) into data-plane config
 * with the keys of /work/prompts/gw-contract.md: one network per listener port, one pipeline per
 * (route, rule, network), one endpoint per match. Gateway API precedence across routes is encoded
 * in `precedence`: older route first, then namespace/name, then rule order (the data plane applies
 * it after hostname, path, method, header and query specificity).
 */
import { createHash } from "node:crypto";
import TOML from "@iarna/toml";
import type { Gateway, HTTPHeaderFilter, HTTPRoute, HTTPRouteMatch, HTTPRouteRule } from "../api/gateway-api.js";
import {
  CONFIG_DIR,
  DRAIN_DELAY_MS,
  MANAGEMENT_NETWORK,
  SECRET_DIR,
  SHUTDOWN_TIMEOUT_MS,
  renderPipeline,
} from "../translator/render.js";
import type { SecretLookup } from "../translator/file-options.js";
import type { ParentAttachment } from "./attach.js";
import { resolveBackend, type BackendLookups, type ResolvedBackend } from "./backends.js";
import { containerPort } from "./names.js";
import type { ListenerPlan } from "./listeners.js";
import { extensionPipeline, type PipelineLookup } from "./rules.js";

type Table = Record<string, unknown>;

export interface GwRenderInput {
  gw: Gateway;
  plans: readonly ListenerPlan[];
  /** Accepted routes and their attachments to this Gateway. */
  routes: readonly { route: HTTPRoute; attachments: readonly ParentAttachment[] }[];
  backends: BackendLookups;
  pipelines: PipelineLookup;
  secrets: SecretLookup;
  bindAddress: string;
  managementPort: number;
}

export interface GwRenderResult {
  files: Record<string, string>;
  secrets: Record<string, Buffer>;
  hash: string;
  /** Secret revisions used (certificates, pipeline secrets): a change re-renders. */
  revisions: string[];
}

const STATIC_500 = { service: "static", options: { status: 500 } };

export function renderGateway(input: GwRenderInput): GwRenderResult {
  const { gw } = input;
  const secrets: Record<string, Buffer> = {};
  const revisions: string[] = [];
  const doc: Table = {
    proxy: {
      id: `gateway/${gw.metadata.namespace}/${gw.metadata.name}`,
      pipelines_path: ".",
      // The same drain as a HarmonyGateway's: the shared workload's grace period is sized for it.
      drain_delay_ms: DRAIN_DELAY_MS,
      shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS,
    },
    logging: { log_level: "info" },
    management: { enabled: true, network: MANAGEMENT_NETWORK, base_path: "/admin" },
    network: networks(input, secrets, revisions),
  };
  const tables = {
    pipelines: {} as Table,
    endpoints: {} as Table,
    middleware: {} as Table,
    backends: {} as Table,
    targets: {} as Table,
  };
  const ordered = [...input.routes].sort((a, b) => olderFirst(a.route, b.route));
  for (const [rank, { route, attachments }] of ordered.entries()) {
    const byNetwork = new Map<string, string[] | undefined>();
    for (const a of attachments)
      for (const l of a.listeners) {
        if (!l.plan.served) continue;
        const prev = byNetwork.has(l.plan.network) ? byNetwork.get(l.plan.network) : [];
        byNetwork.set(
          l.plan.network,
          prev === undefined || l.hostnames === undefined ? undefined : [...new Set([...prev, ...l.hostnames])].sort(),
        );
      }
    for (const [i, rule] of (route.spec.rules ?? []).entries()) {
      for (const [network, hostnames] of byNetwork) {
        const pid = `${route.metadata.namespace}.${route.metadata.name}.r${i}.${network}`;
        const precedence = rank * 1000 + i;
        const endpoints = (rule.matches?.length ? rule.matches : [{}]).map((m, j) => {
          const name = `${pid}.m${j}`;
          tables.endpoints[name] = { service: "http", options: endpointOptions(m, hostnames, precedence) };
          return name;
        });
        const middleware = ruleMiddleware(input, route, rule, pid, tables.middleware, secrets, revisions);
        const backend = ruleBackend(input, route, rule, pid, tables.targets, middleware === undefined);
        tables.backends[`${pid}.backend`] = backend;
        tables.pipelines[pid] = {
          description: `HTTPRoute ${route.metadata.namespace}/${route.metadata.name} rule ${i}`,
          networks: [network],
          endpoints,
          middleware: middleware ?? [],
          backends: [`${pid}.backend`],
        };
      }
    }
  }
  for (const [k, v] of Object.entries(tables)) if (Object.keys(v).length) doc[k] = v;
  const header =
    `# Rendered by the Harmony operator from Gateway ${gw.metadata.namespace}/${gw.metadata.name}; do not edit.\n` +
    (revisions.length
      ? `# secret revisions sha256:${createHash("sha256")
          .update([...new Set(revisions)].sort().join("\n"))
          .digest("hex")}\n`
      : "");
  const files = { "config.toml": header + TOML.stringify(sortKeys(doc) as TOML.JsonMap) };
  const hash = createHash("sha256");
  for (const k of Object.keys(files).sort())
    hash
      .update(k)
      .update("\0")
      .update(files[k as "config.toml"]);
  return { files, secrets, hash: hash.digest("hex"), revisions };
}

function networks(input: GwRenderInput, secrets: Record<string, Buffer>, revisions: string[]): Table {
  const out: Table = {};
  const byNetwork = new Map<string, ListenerPlan[]>();
  for (const p of input.plans) if (p.served) byNetwork.set(p.network, [...(byNetwork.get(p.network) ?? []), p]);
  for (const [network, plans] of byNetwork) {
    const http: Table = { bind_address: input.bindAddress, bind_port: containerPort(plans[0]!.listener.port) };
    const tls = plans.filter((p) => p.tls);
    const files = tls.map((p, i) => {
      const base = `_gw.${network}.${i}`;
      secrets[`${base}.crt`] = p.tls!.cert;
      secrets[`${base}.key`] = p.tls!.key;
      revisions.push(p.tls!.revision);
      return { p, cert_path: `${SECRET_DIR}/${base}.crt`, key_path: `${SECRET_DIR}/${base}.key` };
    });
    if (files.length) {
      // The certificate without a hostname is the default; otherwise the first listener's.
      const dflt = files.find((f) => !f.p.listener.hostname) ?? files[0]!;
      http.cert_path = dflt.cert_path;
      http.key_path = dflt.key_path;
      const sni = files
        .filter((f) => f.p.listener.hostname)
        .map((f) => ({ hostname: f.p.listener.hostname, cert_path: f.cert_path, key_path: f.key_path }));
      if (sni.length) http.sni = sni;
    }
    out[network] = { http };
  }
  out[MANAGEMENT_NETWORK] = { http: { bind_address: "0.0.0.0", bind_port: input.managementPort } };
  return out;
}

function endpointOptions(m: HTTPRouteMatch, hostnames: string[] | undefined, precedence: number): Table {
  const o: Table = { path_prefix: m.path?.value ?? "/" };
  if (m.path?.type === "Exact") o.path_match = "exact";
  // Gateway API: a request that matches but for its method is not routed (404), not 405.
  if (m.method) Object.assign(o, { methods: [m.method], method_mismatch_status: 404 });
  if (hostnames?.length) o.hostnames = hostnames;
  const kv = (list: HTTPRouteMatch["headers"]) =>
    (list ?? []).map((h) => ({
      name: h.name,
      value: h.value,
      ...(h.type === "RegularExpression" ? { type: "regex" } : {}),
    }));
  if (m.headers?.length) o.headers = kv(m.headers);
  if (m.queryParams?.length) o.query = kv(m.queryParams);
  // Only when it breaks a tie: the oldest route's first rule needs none.
  if (precedence > 0) o.precedence = precedence;
  return o;
}

/** Middleware names for the rule, or undefined when an ExtensionRef cannot be had (the rule answers 500). */
function ruleMiddleware(
  input: GwRenderInput,
  route: HTTPRoute,
  rule: HTTPRouteRule,
  pid: string,
  middleware: Table,
  secrets: Record<string, Buffer>,
  revisions: string[],
): string[] | undefined {
  const names: string[] = [];
  for (const [k, f] of (rule.filters ?? []).entries()) {
    const headers = (which: "request" | "response", h: HTTPHeaderFilter | undefined) => {
      const name = `${pid}.f${k}`;
      middleware[name] = { type: "headers", options: { [which]: headerOps(h) } };
      names.push(name);
    };
    if (f.type === "RequestHeaderModifier") headers("request", f.requestHeaderModifier);
    else if (f.type === "ResponseHeaderModifier") headers("response", f.responseHeaderModifier);
    else if (f.type === "ExtensionRef") {
      const p = extensionPipeline(route, f, input.pipelines);
      if ("reason" in p) return undefined;
      // The pipeline's middleware as a HarmonyPipeline renders it (options, Secrets, files); its
      // endpoints and backends are not used here.
      const r = renderPipeline(
        {
          ...p,
          spec: {
            ...p.spec,
            networks: undefined,
            endpoints: [],
            backends: [{ service: "http", url: "http://unused.invalid" }],
          },
        },
        ["x"],
        () => undefined,
        input.secrets,
      );
      if ("failure" in r) return undefined;
      const parsed = TOML.parse(r.toml) as Table;
      for (const [n, m] of Object.entries((parsed.middleware ?? {}) as Table)) {
        middleware[n] = m;
        names.push(n);
      }
      Object.assign(secrets, r.secrets);
      revisions.push(...r.revisions);
    }
  }
  return names;
}

const headerOps = (h: HTTPHeaderFilter | undefined): Table => ({
  ...(h?.set?.length ? { set: Object.fromEntries(h.set.map((x) => [x.name, x.value])) } : {}),
  ...(h?.add?.length ? { add: Object.fromEntries(h.add.map((x) => [x.name, x.value])) } : {}),
  ...(h?.remove?.length ? { remove: h.remove } : {}),
});

function ruleBackend(
  input: GwRenderInput,
  route: HTTPRoute,
  rule: HTTPRouteRule,
  pid: string,
  targets: Table,
  brokenFilter: boolean,
): Table {
  if (brokenFilter) return STATIC_500;
  const redirect = rule.filters?.find((f) => f.type === "RequestRedirect")?.requestRedirect;
  if (redirect) {
    const path = redirect.path;
    return {
      service: "redirect",
      options: {
        ...(redirect.scheme ? { scheme: redirect.scheme } : {}),
        ...(redirect.hostname ? { hostname: redirect.hostname } : {}),
        ...(redirect.port ? { port: redirect.port } : {}),
        ...(path?.type === "ReplaceFullPath" ? { path: { type: "full", value: path.replaceFullPath ?? "/" } } : {}),
        ...(path?.type === "ReplacePrefixMatch"
          ? { path: { type: "prefix", value: path.replacePrefixMatch ?? "/" } }
          : {}),
        status_code: redirect.statusCode ?? 302,
      },
    };
  }
  const resolved = (rule.backendRefs ?? []).map((b) => resolveBackend(route, b, input.backends));
  const weighted = podWeights(resolved);
  if (weighted.every((t) => t.weight === 0)) return STATIC_500;
  // Target names are plain identifiers (a dotted one reads as a provider reference).
  const prefix = `t_${createHash("sha256").update(pid).digest("hex").slice(0, 12)}`;
  const names = weighted.map((t, i) => {
    const name = `${prefix}_${i}`;
    targets[name] = {
      ...("ip" in t ? { connection: { host: t.ip, port: t.port, protocol: "http" } } : { static_status: 500 }),
      ...(t.weight !== 1 ? { weight: t.weight } : {}),
    };
    return name;
  });
  return { service: "http", targets: names, options: { preserve_host: true, strip_prefix: false } };
}

/**
 * One target per pod, weighted so each backendRef keeps its share: a ref's weight is split evenly
 * over its pods (scaled by the least common multiple of the pod counts to stay an integer), and
 * all weights are divided by their greatest common divisor. A ref with no usable pods answers 500.
 */
function podWeights(
  resolved: readonly ResolvedBackend[],
): ({ ip: string; port: number; weight: number } | { weight: number })[] {
  const count = (r: ResolvedBackend) => ("addresses" in r && r.addresses.length ? r.addresses.length : 1);
  const l = resolved.reduce((acc, r) => lcm(acc, count(r)), 1);
  const out = resolved.flatMap((r) =>
    "addresses" in r && r.addresses.length
      ? r.addresses.map((a) => ({ ...a, weight: (r.weight * l) / r.addresses.length }))
      : [{ weight: r.weight * l }],
  );
  const g = out.reduce((acc, t) => gcd(acc, t.weight), 0) || 1;
  return out.map((t) => ({ ...t, weight: t.weight / g }));
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number) => (a * b) / gcd(a, b);

function olderFirst(a: HTTPRoute, b: HTTPRoute): number {
  const ta = a.metadata.creationTimestamp ? String(a.metadata.creationTimestamp) : "";
  const tb = b.metadata.creationTimestamp ? String(b.metadata.creationTimestamp) : "";
  if (ta !== tb) return new Date(ta).getTime() - new Date(tb).getTime() || ta.localeCompare(tb);
  return `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object" && !(v instanceof Date)) {
    const out: Table = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Table)[k]);
    return out;
  }
  return v;
}

export { CONFIG_DIR };
