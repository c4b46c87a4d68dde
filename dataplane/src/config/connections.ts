/**
 * Harmony 0.13's indirection from services to connections, resolved into plain plugin options:
 * a backend's `target_ref` names a `[targets.<n>]` entry, an endpoint's `peer_ref` names a
 * `[peers.<n>]` entry, and a DIMSE endpoint on a network with `[network.X.tcp_config]` binds there.
 * Plugins never see a reference: what a connection can supply (base_url, tls, timeouts and an
 * Authorization header for http/https; host and port for dicom; a bind address and port for a
 * listener) is offered to every plugin, and each takes the keys its own option schema declares.
 * One mechanism for http, fhir, dicomweb, dicom and whatever comes next. Options written on the
 * service itself always win over what a reference supplies.
 */
import type { TSchema } from "@sinclair/typebox";
import type { HarmonyConfig, PeerSection, TargetSection } from "./schema.js";

type Table = Record<string, unknown>;
type Path = (string | number)[];

export interface ConnectionProblem {
  /** Relative to the service entry, or (absolute) from the top of the document. */
  path: Path;
  absolute?: boolean;
  message: string;
  severity: "error" | "warning";
}

export interface Supplied {
  /** Options the reference offers, already limited to what the plugin accepts. */
  options: Table;
  problems: ConnectionProblem[];
}

const isTable = (v: unknown): v is Table => typeof v === "object" && v !== null && !Array.isArray(v);

/** The option names a plugin's schema declares. */
export function optionKeys(schema: TSchema): Set<string> {
  const props = (schema as { properties?: Table }).properties;
  return new Set(isTable(props) ? Object.keys(props) : []);
}

/**
 * Explicit options over supplied ones; nested tables (tls, headers) merge key by key so that a
 * target's Authorization header and a backend's own extra headers both survive.
 */
export function overlay(supplied: Table, explicit: Table): Table {
  const out: Table = { ...supplied };
  for (const [k, v] of Object.entries(explicit)) {
    const s = out[k];
    out[k] = isTable(s) && isTable(v) ? { ...s, ...v } : v;
  }
  return out;
}

/** `"orthanc"` and `"local.name.orthanc"` name the same local entry. */
function localName(ref: string): string | undefined {
  if (!ref.includes(".")) return ref;
  const m = /^local\.name\.(.+)$/.exec(ref);
  return m?.[1];
}

/** What `[targets.<name>]` supplies to a backend whose option schema has the given keys. */
export function fromTarget(
  doc: HarmonyConfig,
  ref: string,
  accepts: Set<string>,
  service: string,
  refPath: Path = ["target_ref"],
): Supplied {
  const problems: ConnectionProblem[] = [];
  const here = (message: string, severity: ConnectionProblem["severity"] = "error") =>
    problems.push({ path: refPath, message, severity });
  const name = localName(ref);
  if (name === undefined) {
    here(`"${ref}" is a provider reference; this build resolves local targets only (write the target's name)`);
    return { options: {}, problems };
  }
  const target = doc.targets?.[name];
  if (!target) {
    here(`target "${name}" is not defined (no [targets.${name}])`);
    return { options: {}, problems };
  }
  const at = (sub: Path, message: string, severity: ConnectionProblem["severity"] = "error") =>
    problems.push({ path: ["targets", name, ...sub], absolute: true, message, severity });

  const conn = target.connection;
  const scheme = protocolOf(target);
  const offered: Table = {};
  if (scheme === "dicom") {
    if (!accepts.has("host")) {
      here(`target "${name}" speaks dicom; service "${service}" needs an http or https target`);
      return { options: {}, problems };
    }
    if (conn?.port === undefined) at(["connection", "port"], "is required for a dicom target (there is no default)");
    if (conn?.tls?.enabled)
      at(
        ["connection", "tls", "enabled"],
        "DICOM TLS is not available in this build; refusing to connect in clear text",
      );
    if (target.authentication)
      at(["authentication"], "dicom targets send no credentials; authentication is not used", "warning");
    offered.host = conn?.host;
    offered.port = conn?.port;
    if (target.timeout_secs !== undefined) offered.association_timeout_ms = Math.round(target.timeout_secs * 1000);
  } else {
    if (!accepts.has("base_url")) {
      here(`target "${name}" speaks ${scheme}; service "${service}" needs a dicom target`);
      return { options: {}, problems };
    }
    if (conn?.host === undefined && !target.url) {
      // Without it (the schema says so too when connection exists) there is no URL to build.
      at(conn ? ["connection"] : [], "needs connection.host (or a 0.4-style url)");
      return { options: {}, problems };
    }
    offered.base_url = conn?.host !== undefined ? baseUrl(scheme, conn.host, conn.port, conn.base_path) : target.url;
    const { enabled: _enabled, ...tls } = conn?.tls ?? {};
    if (Object.keys(tls).length > 0) {
      if (scheme === "https") offered.tls = tls;
      else at(["connection", "tls"], "has settings but the target is plain http; they are not used", "warning");
    }
    if (target.timeout_secs !== undefined) {
      const ms = Math.round(target.timeout_secs * 1000);
      offered.headers_timeout_ms = ms;
      offered.body_timeout_ms = ms;
    }
    if (target.authentication) {
      const header = authorization(doc, target.authentication, (m) => at(["authentication"], m));
      if (header) offered.headers = { authorization: header };
    }
  }
  const options: Table = {};
  for (const [k, v] of Object.entries(offered)) if (v !== undefined && accepts.has(k)) options[k] = v;
  return { options, problems };
}

/**
 * `targets = ["a", "b"]`: each target as one entry of the backend's `upstreams`; the first also
 * supplies the backend-wide settings (base_url for validation, timeouts).
 */
export function fromTargets(doc: HarmonyConfig, refs: string[], accepts: Set<string>, service: string): Supplied {
  if (!accepts.has("upstreams"))
    return {
      options: {},
      problems: [
        {
          path: ["targets"],
          message: `service "${service}" takes one target (target_ref); several targets are for http, fhir and dicomweb backends`,
          severity: "error",
        },
      ],
    };
  const problems: ConnectionProblem[] = [];
  const upstreams: Table[] = [];
  let first: Table | undefined;
  refs.forEach((ref, k) => {
    const name = localName(ref);
    const target = name === undefined ? undefined : doc.targets?.[name];
    const weight = target?.weight === undefined ? {} : { weight: target.weight };
    if (target?.static_status !== undefined) {
      // Answers by itself: no connection to resolve.
      upstreams.push({ name: name!, static_status: target.static_status, ...weight });
      return;
    }
    const r = fromTarget(doc, ref, accepts, service, ["targets", k]);
    problems.push(...r.problems);
    if (typeof r.options.base_url !== "string") return;
    first ??= r.options;
    const { base_url, tls, headers } = r.options;
    upstreams.push({
      name: localName(ref) ?? ref,
      base_url,
      ...weight,
      ...(tls ? { tls } : {}),
      ...(headers ? { headers } : {}),
    });
  });
  const names = refs.map((r) => localName(r) ?? r);
  const dup = names.find((n, k) => names.indexOf(n) !== k);
  if (dup) problems.push({ path: ["targets"], message: `target "${dup}" is listed twice`, severity: "error" });
  if (!first) return { options: upstreams.length ? { upstreams } : {}, problems };
  const { tls: _tls, headers: _headers, ...shared } = first;
  return { options: { ...shared, upstreams }, problems };
}

/** What `[peers.<name>]` supplies to an endpoint with its own listener. */
export function fromPeer(doc: HarmonyConfig, ref: string, accepts: Set<string>, service: string): Supplied {
  const problems: ConnectionProblem[] = [];
  const name = localName(ref);
  const peer: PeerSection | undefined = name === undefined ? undefined : doc.peers?.[name];
  if (!peer) {
    problems.push({
      path: ["peer_ref"],
      message:
        name === undefined
          ? `"${ref}" is a provider reference; this build resolves local peers only`
          : `peer "${name}" is not defined (no [peers.${name}])`,
      severity: "error",
    });
    return { options: {}, problems };
  }
  if (!accepts.has("port")) {
    problems.push({
      path: ["peer_ref"],
      message: `service "${service}" serves on its network's HTTP listener; peer_ref is not used`,
      severity: "warning",
    });
    return { options: {}, problems };
  }
  return { options: listenerOptions(peer.connection?.host, peer.connection?.port, accepts), problems };
}

/** What a network's `[tcp_config]` supplies to a DIMSE endpoint of one of its pipelines. */
export function fromTcpConfig(
  tcp: { bind_address?: string; bind_port?: number; harmony_network?: string } | undefined,
  accepts: Set<string>,
): Table {
  if (!tcp) return {};
  const out = listenerOptions(tcp.bind_address, tcp.bind_port, accepts);
  if (tcp.harmony_network !== undefined && accepts.has("harmony_network")) out.harmony_network = tcp.harmony_network;
  return out;
}

function listenerOptions(host: string | undefined, port: number | undefined, accepts: Set<string>): Table {
  const out: Table = {};
  if (host !== undefined && accepts.has("bind_address")) out.bind_address = host;
  if (port !== undefined && accepts.has("port")) out.port = port;
  return out;
}

function protocolOf(t: TargetSection): "http" | "https" | "dicom" {
  const p = t.connection?.protocol;
  if (p === "dicom") return "dicom";
  if (p === "https" || t.connection?.tls?.enabled) return "https";
  if (p === "http") return "http";
  if (!t.connection && t.url?.startsWith("https:")) return "https";
  return "http";
}

function baseUrl(
  scheme: "http" | "https",
  host: string,
  port: number | undefined,
  basePath: string | undefined,
): string {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host; // IPv6 literal
  const p = port === undefined || port === (scheme === "https" ? 443 : 80) ? "" : `:${port}`;
  const path = (basePath ?? "").replace(/^\/*/, "/").replace(/\/+$/, "");
  return `${scheme}://${h}${p}${path === "/" ? "" : path}`;
}

/** The Authorization header an `[authentications.<id>]` entry stands for. */
function authorization(doc: HarmonyConfig, ref: string, fail: (message: string) => void): string | undefined {
  const id = ref.replace(/^authentications\./, "");
  const auth = doc.authentications?.[id];
  if (!auth) {
    fail(`authentication "${id}" is not defined (no [authentications.${id}])`);
    return undefined;
  }
  const o = auth.options ?? {};
  if (auth.method === "bearer") {
    if (!o.token) fail(`[authentications.${id}] (bearer) needs options.token`);
    else return `Bearer ${o.token}`;
  } else if (auth.method === "basic") {
    if (o.username === undefined || o.password === undefined)
      fail(`[authentications.${id}] (basic) needs options.username and options.password`);
    else if (o.username.includes(":")) fail(`[authentications.${id}] options.username must not contain ":"`);
    else return `Basic ${Buffer.from(`${o.username}:${o.password}`).toString("base64")}`;
  }
  return undefined;
}

/** Names of `[authentications.*]` entries some target uses. */
export function usedAuthentications(doc: HarmonyConfig): Set<string> {
  const out = new Set<string>();
  for (const t of Object.values(doc.targets ?? {}))
    if (typeof t.authentication === "string") out.add(t.authentication.replace(/^authentications\./, ""));
  return out;
}
