/**
 * The one source of truth for the shape of Harmony TOML config.
 *
 * TypeBox gives us the JSON Schema (committed as dataplane/schema/harmony-config.schema.json
 * for editors, and compiled by ajv for validation) and the TypeScript types from the same
 * declaration, so the two cannot drift. Plugin options are validated by each plugin's own
 * schema (see plugins/types.ts); here they are free-form tables.
 */
import { Type, type Static, type TSchema } from "@sinclair/typebox";

const Str = (description: string, opts: object = {}) => Type.String({ description, ...opts });
const Bool = (description: string) => Type.Boolean({ description });
const Port = (description: string) => Type.Integer({ minimum: 0, maximum: 65535, description });
const Obj = <T extends Record<string, TSchema>>(props: T, description: string) =>
  Type.Object(props, { additionalProperties: false, description });
/** A table whose keys are user-chosen names. */
const NamedTables = <T extends TSchema>(item: T, description: string) =>
  Type.Record(Type.String(), item, { description });
/** Free-form table, validated elsewhere (plugin options, features of later releases). */
const OpenTable = (description: string) => Type.Record(Type.String(), Type.Unknown(), { description });

export const LogLevel = Type.Union(
  ["trace", "debug", "info", "warn", "error"].map((l) => Type.Literal(l)),
  { description: "Minimum level written to the log." },
);

export const ContentLimits = Obj(
  {
    max_body_size: Type.Integer({
      minimum: 0,
      description: "Largest request body (bytes) a middleware may buffer; larger bodies get 413.",
    }),
    max_csv_rows: Type.Optional(Type.Integer({ minimum: 0, description: "Maximum CSV rows parsed." })),
    max_xml_depth: Type.Optional(Type.Integer({ minimum: 0, description: "Maximum XML nesting depth." })),
    max_json_depth: Type.Optional(
      Type.Integer({ minimum: 1, description: "Maximum JSON nesting depth a middleware will parse (default 100)." }),
    ),
    max_multipart_files: Type.Optional(
      Type.Integer({ minimum: 0, description: "Maximum files in one multipart body." }),
    ),
    max_form_fields: Type.Optional(Type.Integer({ minimum: 0, description: "Maximum fields in one form body." })),
  },
  "Request body limits (newer layout).",
);

export const PathNormalizationSection = Obj(
  {
    encoded_slash: Type.Optional(
      Type.Union([Type.Literal("reject"), Type.Literal("decode"), Type.Literal("keep")], {
        description:
          "Encoded / and \\ (%2F, %5C) in a path: reject (400, default); decode (%2F becomes a separator, %5C is still 400); keep (forwarded encoded: only for upstreams that never decode them).",
      }),
    ),
    semicolon: Type.Optional(
      Type.Union([Type.Literal("reject"), Type.Literal("strip"), Type.Literal("keep")], {
        description:
          "';' parameters in path segments: reject (400, default); strip (removed from every segment before matching and forwarding); keep (ordinary characters).",
      }),
    ),
    case_insensitive: Type.Optional(
      Bool("Routes, policies path rules and path_filter ignore case (default false); the path is forwarded as sent."),
    ),
  },
  "How request paths are made canonical before routing, policies, path_filter, logging and forwarding.",
);

export const ProxySection = Obj(
  {
    id: Type.Optional(Str("Proxy identifier (0.4 layout).", { minLength: 1 })),
    name: Type.Optional(Str("Proxy name (newer layout; used as id when id is absent).", { minLength: 1 })),
    log_level: Type.Optional(LogLevel),
    pipelines_path: Type.Optional(Str("Directory of pipeline *.toml files, relative to this file.")),
    transforms_path: Type.Optional(Str("Directory of transform specs and *.toml files, relative to this file.")),
    mesh_path: Type.Optional(
      Str("Directory of mesh *.toml files ([mesh.*] tables), relative to this file (default mesh)."),
    ),
    primary_provider: Type.Optional(
      Str(
        'Configuration provider (runbeam, local, ...). This build reads files only: anything but "local" is reported once as not used.',
      ),
    ),
    jwks_cache_duration_hours: Type.Optional(Type.Number({ minimum: 0, description: "JWKS cache lifetime." })),
    store_dir: Type.Optional(Str("Accepted for compatibility; unused.")),
    content_limits: Type.Optional(Type.Partial(ContentLimits)),
    client_header_timeout_ms: Type.Optional(
      Type.Integer({
        minimum: 100,
        description: "Time a client gets to send its request headers (slow clients are cut off; default 60000).",
      }),
    ),
    client_keepalive_timeout_ms: Type.Optional(
      Type.Integer({
        minimum: 100,
        description:
          "How long an idle keep-alive client connection is kept open between requests (default 65000; sent as Keep-Alive: timeout=<s>).",
      }),
    ),
    client_body_timeout_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          "Longest pause between two request body bytes before the client gets 408 and the connection (and any upstream request it feeds) is closed (default 60000; 0 disables this and client_body_min_rate).",
      }),
    ),
    client_send_timeout_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          "Longest a client may take none of an answer's bytes while some wait to be sent; then its connection (HTTP/2: the stream) and the upstream request feeding the answer are closed (default 60000; 0 disables).",
      }),
    ),
    client_body_min_rate: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          "Bytes per second a request body must average: it gets client_body_timeout_ms plus 1 s per this many bytes in all, then 408 (default 500; 0 disables).",
      }),
    ),
    shutdown_timeout_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          "How long SIGTERM waits for in-flight requests, after drain_delay_ms, before closing them (default 30000).",
      }),
    ),
    drain_delay_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 600_000,
        description:
          "After SIGTERM, how long the listeners keep accepting and serving while /readyz answers 503 and every response carries Connection: close (HTTP/2: GOAWAY), so load balancers and kube-proxy drop the instance before it stops listening (default 0; the Kubernetes operator renders 5000).",
      }),
    ),
    path_normalization: Type.Optional(PathNormalizationSection),
    http1_server: Type.Optional(
      Type.Union([Type.Literal("llhttp"), Type.Literal("node")], {
        description:
          'Server side of plain (non-TLS) HTTP/1.1 listeners: "llhttp" (default), a lean reader on Node\'s own parser that serves body-less requests to backend-only routes itself and hands every other connection to node:http; "node": node:http for every request. HTTPS and HTTP/2 listeners always use node:http. A change rebinds the listeners.',
      }),
    ),
    workers: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 256 }), Type.Literal("auto")], {
        description:
          'Worker processes serving the HTTP listeners (default 1: one process); "auto": one per available core. Each worker binds the listeners with SO_REUSEPORT; DIMSE listeners stay in worker 1; reloads, /readyz, /metrics and the admin API answer for the whole group. Read at start: a change takes effect at the next restart.',
      }),
    ),
  },
  "Process-wide settings.",
);

export const HttpListener = Obj(
  {
    bind_address: Type.Optional(Str("Address to listen on.", { minLength: 1 })),
    bind_port: Type.Optional(Port("TCP port to listen on.")),
    cert_path: Type.Optional(Str("PEM certificate for HTTPS.")),
    key_path: Type.Optional(Str("PEM private key for HTTPS.")),
    force_https: Type.Optional(
      Bool("On a listener without a certificate: answer every request with a 301 to https://."),
    ),
    https_port: Type.Optional(Port("Port the force_https redirect points at (default 443).")),
    http2: Type.Optional(Bool("Offer HTTP/2 by ALPN on HTTPS listeners (default true).")),
    sni: Type.Optional(
      Type.Array(
        Obj(
          {
            hostname: Str(
              'Server name this certificate is for: exact ("a.example.com") or wildcard ("*.example.com": one or more labels before the suffix).',
              {
                pattern:
                  "^(\\*\\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$",
              },
            ),
            cert_path: Str("PEM certificate served for that name."),
            key_path: Str("Its PEM private key."),
          },
          "One certificate of an HTTPS listener, chosen by the client's SNI.",
        ),
        {
          description:
            "More certificates on this HTTPS listener, by server name (SNI): an exact name beats a wildcard, a longer wildcard a shorter one; cert_path/key_path serve clients whose name matches none (or who send none). Re-read on change like cert_path.",
        },
      ),
    ),
    cert_reload_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: "How often certificate files are checked for a change (0: never; default 5000).",
      }),
    ),
  },
  "HTTP listener of a network.",
);

export const Http3Listener = Obj(
  {
    bind_address: Type.Optional(Str("Address to listen on (UDP).", { minLength: 1 })),
    bind_port: Type.Optional(Port("UDP port to listen on.")),
    cert_path: Type.Optional(Str("PEM certificate.")),
    key_path: Type.Optional(Str("PEM private key.")),
  },
  "HTTP/3 (QUIC) listener. Accepted and reported with a warning: Node has no QUIC, so it is not started.",
);

export const TcpConfig = Obj(
  {
    bind_address: Type.Optional(Str("Address DIMSE endpoints on this network listen on.", { minLength: 1 })),
    bind_port: Type.Optional(Port("Port DIMSE endpoints on this network listen on.")),
  },
  "DIMSE listener settings of a network: a `dicom` endpoint on one of its pipelines binds here unless its own options or peer_ref say otherwise. A network with only tcp_config serves DIMSE endpoints only.",
);

const Protocol = Type.Union([Type.Literal("http"), Type.Literal("https"), Type.Literal("dicom")], {
  description: "What the connection speaks.",
});

export const ConnectionTls = Obj(
  {
    enabled: Type.Optional(Bool("Use TLS (an http connection becomes https).")),
    insecure_skip_verify: Type.Optional(Bool("Accept any certificate (testing only).")),
    ca_path: Type.Optional(Str("PEM CA bundle to verify the server with.")),
    server_name: Type.Optional(Str("SNI and verification name.")),
    cert_path: Type.Optional(Str("Client certificate (mutual TLS).")),
    key_path: Type.Optional(Str("Client key (mutual TLS).")),
  },
  "TLS towards a target.",
);

export const TargetConnection = Obj(
  {
    host: Str("Host name or address.", { minLength: 1 }),
    port: Type.Optional(Port("Port (default 80 for http, 443 for https; required for dicom).")),
    protocol: Type.Optional(Protocol),
    base_path: Type.Optional(Str("Path prefix on the server (http, https).")),
    tls: Type.Optional(ConnectionTls),
  },
  "Where a target is.",
);

export const TargetSection = Obj(
  {
    connection: Type.Optional(TargetConnection),
    timeout_secs: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, description: "Time allowed for a response (and between body chunks)." }),
    ),
    authentication: Type.Optional(
      Str('Outbound credentials: "<id>" or "authentications.<id>" (http and https targets).'),
    ),
    description: Type.Optional(Str("Human-readable description.")),
    weight: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          "Share of requests among a backend's targets (default 1): weight 70 beside weight 30 gets 70 %; weight 0 is never chosen.",
      }),
    ),
    static_status: Type.Optional(
      Type.Integer({
        minimum: 100,
        maximum: 599,
        description:
          "The target answers this status itself (a problem+json body) without connecting anywhere: a Gateway API backendRef that does not resolve, chosen by weight like any other target. Needs no connection.",
      }),
    ),
    type: Type.Optional(Str("0.4 layout: target type (informational).")),
    url: Type.Optional(Str("0.4 layout: the target's URL, used as base_url when no connection is given.")),
  },
  "A named upstream that backends reference with target_ref (http, fhir, dicomweb: base_url, tls, timeouts and credentials; dicom: host and port).",
);

export const PeerSection = Obj(
  {
    connection: Type.Optional(
      Obj(
        {
          host: Type.Optional(Str("Address to listen on.", { minLength: 1 })),
          port: Type.Optional(Port("Port to listen on.")),
          protocol: Type.Optional(Protocol),
        },
        "Where a peer listens.",
      ),
    ),
    description: Type.Optional(Str("Human-readable description.")),
  },
  "A named listening address that endpoints reference with peer_ref (a `dicom` endpoint binds to its host and port).",
);

export const AuthenticationSection = Obj(
  {
    id: Type.Optional(Str("Identifier (informational).")),
    method: Type.Union([Type.Literal("bearer"), Type.Literal("basic")], { description: "How credentials are sent." }),
    options: Type.Optional(
      Obj(
        {
          token: Type.Optional(Str("Bearer token.", { minLength: 1 })),
          username: Type.Optional(Str("Basic user name.")),
          password: Type.Optional(Str("Basic password.")),
        },
        "Credentials.",
      ),
    ),
    description: Type.Optional(Str("Human-readable description.")),
  },
  "Outbound credentials; a target's `authentication` sends them as an Authorization header.",
);

export const ProviderSection = Obj(
  {
    api: Type.Optional(Str("Provider API base URL.")),
    poll_interval_secs: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 3600, description: "Polling interval (0 disables)." }),
    ),
  },
  "A configuration provider (Runbeam cloud). Accepted; this build reads configuration from files only and reports the table once as not used.",
);

export const RunbeamSection = Obj(
  {
    enabled: Type.Optional(Bool("Legacy Runbeam cloud connection.")),
    cloud_api_base_url: Type.Optional(Str("Runbeam API base URL.")),
    poll_interval_secs: Type.Optional(Type.Integer({ minimum: 5, maximum: 3600, description: "Polling interval." })),
  },
  "Legacy Runbeam settings. Accepted; reported once as not used unless enabled = false.",
);

export const RemoteIngressSection = Obj(
  {
    urls: Type.Optional(Type.Array(Str("URL."), { description: "Where a remote mesh member is reached." })),
    description: Type.Optional(Str("Human-readable description.")),
  },
  "A remote mesh ingress. Accepted; reported once as not used by this build.",
);

export const NetworkSection = Obj(
  {
    enable_wireguard: Type.Optional(Bool("Accepted for compatibility; WireGuard is not implemented.")),
    interface: Type.Optional(Str("WireGuard interface name (compatibility).", { minLength: 1 })),
    http: Type.Optional(HttpListener),
    http3: Type.Optional(Http3Listener),
    tcp_config: Type.Optional(TcpConfig),
    dicom: Type.Optional(OpenTable("DIMSE listener settings.")),
    harmony_network: Type.Optional(
      Str(
        "Makes this the inter-gateway listener of that [harmony_networks] entry: the HTTP listener serves HTTPS with the network identity certificate, requires a client certificate verified against the trust bundle, and evaluates the directory's policies on the caller's SPIFFE identity (the listener's own cert_path/key_path are not used).",
        { minLength: 1 },
      ),
    ),
  },
  "A network: a set of listeners pipelines attach to.",
);

export const HarmonyNetworkSection = Obj(
  {
    domain: Str("The network's DNS domain: endpoint URIs are harmony://<domain>/<org>/<endpoint>.", {
      minLength: 1,
      pattern: "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$",
    }),
    org: Str("This gateway's org (its namespace); must equal the org in its identity certificate's SPIFFE URI.", {
      minLength: 1,
      pattern: "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
    }),
    cert_path: Str(
      "PEM identity certificate (leaf, then chain) with URI SAN spiffe://<domain>/org/<org>/gateway/<name>.",
      {
        minLength: 1,
      },
    ),
    key_path: Str("PEM private key of the identity certificate.", { minLength: 1 }),
    trust_bundle_path: Str(
      "PEM CA certificates peers are verified against (several during a CA rotation, and one per federated peer). A line `Harmony-Orgs: a, b` before a certificate binds that CA to those orgs: a peer whose certificate it issued is refused (403, or no DICOM association) unless its SPIFFE org is one of them. `Harmony-Orgs:` alone: no org; no line: any org of the network (a bundle with no such line at all is not scoped). The operator writes the line for every CA.",
      { minLength: 1 },
    ),
    directory_path: Str("directory.json written by the operator: endpoints, groups and policies of the network.", {
      minLength: 1,
    }),
    export_path: Type.Optional(
      Str("Signed export (JWS) served as-is at GET /.well-known/harmony/<network>/export.jws.", { minLength: 1 }),
    ),
  },
  "A Harmony network this gateway is a member of. Every file is re-read when it changes: a file that does not load is reported with its path and the last good state keeps serving.",
);

export const MiddlewareSplit = Obj(
  {
    left: Type.Optional(Type.Array(Type.String(), { description: "Request-side middleware, in order." })),
    right: Type.Optional(Type.Array(Type.String(), { description: "Response-side middleware, run in listed order." })),
  },
  "Split middleware chains (newer layout).",
);

export const PipelineSection = Obj(
  {
    description: Type.Optional(Str("Human-readable description.")),
    networks: Type.Optional(
      Type.Array(Type.String(), {
        description: "Networks whose HTTP listeners serve this pipeline (DIMSE endpoints listen on their own port).",
      }),
    ),
    endpoints: Type.Array(Type.String(), { description: "Endpoints (entry points) of this pipeline." }),
    backends: Type.Optional(Type.Array(Type.String(), { description: "Backends; the first one is called." })),
    middleware: Type.Optional(
      Type.Union([Type.Array(Type.String()), MiddlewareSplit], {
        description:
          "Middleware: a list (each runs on the request in order and on the response in reverse), or {left, right}.",
      }),
    ),
    mesh: Type.Optional(OpenTable("Mesh ingress/egress (newer layout).")),
    enabled: Type.Optional(Bool("Set false to load the pipeline but not route to it.")),
  },
  "A pipeline: endpoints -> middleware -> backend.",
);

export const ServiceRef = Obj(
  {
    service: Str("Service type (http, echo, fhir, dicomweb, dicom, jmix, ...).", { minLength: 1 }),
    options: Type.Optional(OpenTable("Service options, validated by the service's own schema.")),
    target_ref: Type.Optional(
      Str(
        'Backends: name of a [targets] entry ("<name>" or "local.name.<name>") that supplies the connection options; options written here win.',
        { minLength: 1 },
      ),
    ),
    targets: Type.Optional(
      Type.Array(Str("A [targets] entry.", { minLength: 1 }), {
        minItems: 1,
        description:
          "Backends (http, fhir, dicomweb): several [targets] entries served as one, balanced (options.balance), with passive and optional active health and retries on another target.",
      }),
    ),
    peer_ref: Type.Optional(
      Str(
        "Endpoints: name of a [peers] entry whose host and port a `dicom` endpoint listens on; options written here win.",
        {
          minLength: 1,
        },
      ),
    ),
    description: Type.Optional(Str("Human-readable description.")),
  },
  "An endpoint or backend instance.",
);

export const MiddlewareInstance = Obj(
  {
    type: Str("Middleware type.", { minLength: 1 }),
    options: Type.Optional(OpenTable("Middleware options, validated by the middleware's own schema.")),
    authentication: Type.Optional(Str("Reference to an [authentications] entry.")),
    description: Type.Optional(Str("Human-readable description.")),
  },
  "A configured middleware instance.",
);

export const ModuleRef = Obj(
  {
    module: Type.Optional(Str('Must be "" (built-in); dynamic modules are not supported.')),
    id: Type.Optional(Str("Provider-assigned id (newer layout).")),
  },
  "Registration of a built-in type (compatibility with the 0.4 layout).",
);

export const ManagementSection = Obj(
  {
    enabled: Type.Optional(Bool("Serve the management API, health and metrics.")),
    base_path: Type.Optional(Str("Path prefix of the admin API (default admin).")),
    network: Type.Optional(Str("Network whose listener serves management.")),
    token: Type.Optional(Str("Bearer token required on /admin/* (prefer token_file or token_env).")),
    token_file: Type.Optional(Str("File holding the admin bearer token.")),
    token_env: Type.Optional(Str("Environment variable holding the admin bearer token.")),
    allowed_hosts: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description:
          "Host names (or IP literals) management answers to, beside localhost, 127.0.0.1 and ::1 when bound to loopback. Other Host headers get 421 (DNS rebinding); set it when management is reached under a name beyond loopback. Empty and not on loopback: any Host.",
      }),
    ),
  },
  "Management API.",
);

export const LoggingSection = Obj(
  {
    log_level: Type.Optional(LogLevel),
    log_to_file: Type.Optional(Bool("Also write logs to log_file_path.")),
    log_file_path: Type.Optional(Str("Log file path.")),
    access_log: Type.Optional(
      Bool("Write one JSON access line per request to stdout, batched per event-loop turn (default true)."),
    ),
  },
  "Logging.",
);

export const MetricsSection = Obj(
  {
    gc: Type.Optional(
      Bool(
        "Record nodejs_gc_duration_seconds (every GC's duration, by kind) for /metrics (default true). false: no GC is observed and the metric is left out, for the small cost per GC it saves.",
      ),
    ),
  },
  "Process metrics served on the management network's /metrics.",
);

export const StorageSection = Obj(
  {
    backend: Type.Optional(Type.Literal("filesystem", { description: "Storage backend." })),
    options: Type.Optional(
      Obj({ path: Type.Optional(Str("Root directory.", { minLength: 1 })) }, "Filesystem storage options."),
    ),
  },
  "Local storage.",
);

export const HarmonyConfig = Obj(
  {
    proxy: Type.Optional(ProxySection),
    management: Type.Optional(ManagementSection),
    logging: Type.Optional(LoggingSection),
    metrics: Type.Optional(MetricsSection),
    storage: Type.Optional(StorageSection),
    network: Type.Optional(NamedTables(NetworkSection, "Networks by name.")),
    pipelines: Type.Optional(NamedTables(PipelineSection, "Pipelines by name.")),
    endpoints: Type.Optional(NamedTables(ServiceRef, "Endpoints by name.")),
    backends: Type.Optional(NamedTables(ServiceRef, "Backends by name.")),
    middleware: Type.Optional(NamedTables(MiddlewareInstance, "Middleware instances by name.")),
    middleware_types: Type.Optional(NamedTables(ModuleRef, "Middleware type registrations (0.4).")),
    services: Type.Optional(NamedTables(ModuleRef, "Service type registrations (0.4).")),
    targets: Type.Optional(NamedTables(TargetSection, "Named upstream targets (backends: target_ref).")),
    policies: Type.Optional(NamedTables(OpenTable("A policy."), "Access policies by id.")),
    rules: Type.Optional(NamedTables(OpenTable("A policy rule."), "Policy rules by id.")),
    mesh: Type.Optional(NamedTables(OpenTable("A mesh."), "Mesh definitions.")),
    provider: Type.Optional(NamedTables(ProviderSection, "Configuration providers.")),
    runbeam: Type.Optional(RunbeamSection),
    authentications: Type.Optional(NamedTables(AuthenticationSection, "Outbound credentials by id.")),
    peers: Type.Optional(NamedTables(PeerSection, "Named listening addresses (endpoints: peer_ref).")),
    harmony_networks: Type.Optional(
      NamedTables(HarmonyNetworkSection, "Harmony networks (mTLS identity, directory, policies) by name."),
    ),
    remote_ingress: Type.Optional(NamedTables(RemoteIngressSection, "Remote ingresses.")),
    ingress: Type.Optional(
      NamedTables(
        OpenTable("A mesh ingress."),
        "Mesh ingress definitions as mesh files write them. Accepted; this build declares them per pipeline ([pipelines.X.mesh.ingress]) and reports these once as not used.",
      ),
    ),
    egress: Type.Optional(
      NamedTables(
        OpenTable("A mesh egress."),
        "Mesh egress definitions as mesh files write them. Accepted; reported once as not used (see [pipelines.X.mesh.egress]).",
      ),
    ),
    middleware_legacy: Type.Optional(OpenTable("Legacy middleware settings (ignored).")),
  },
  "Harmony proxy configuration (TOML). Main file plus every *.toml under proxy.pipelines_path, proxy.transforms_path and proxy.mesh_path; a table defined in two files takes the later file's version (with a warning).",
);

export type HarmonyConfig = Static<typeof HarmonyConfig>;
export type PipelineSection = Static<typeof PipelineSection>;
export type NetworkSection = Static<typeof NetworkSection>;
export type HttpListener = Static<typeof HttpListener>;
export type ServiceRef = Static<typeof ServiceRef>;
export type MiddlewareInstance = Static<typeof MiddlewareInstance>;
export type LogLevel = Static<typeof LogLevel>;
export type TargetSection = Static<typeof TargetSection>;
export type PeerSection = Static<typeof PeerSection>;
export type HarmonyNetworkSection = Static<typeof HarmonyNetworkSection>;

export const SCHEMA_ID = "https://harmony.runbeam.io/schemas/harmony-config.schema.json";

/** The JSON Schema document as published (draft-07, which ajv and editors both read). */
export function configJsonSchema(): Record<string, unknown> {
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    $id: SCHEMA_ID,
    title: "Harmony configuration",
    ...(JSON.parse(JSON.stringify(HarmonyConfig)) as Record<string, unknown>),
  };
}
