/**
 * harmony.runbeam.io/v1alpha1: the one schema source for the CRDs (crds/*.yaml are generated
 * from it by crd-gen.ts) and for the operator's TypeScript types (Static<> below). A test fails
 * when the committed YAML drifts from this file.
 *
 * Kubernetes structural schemas allow a subset of JSON Schema: no `const`, no `patternProperties`,
 * no `additionalProperties: false`. The helpers below emit only that subset.
 */
import { Type, type Static, type TSchema, type TProperties } from "@sinclair/typebox";
import { createRegistry } from "@harmony/dataplane";

export const GROUP = "harmony.runbeam.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

// ---- structural-schema helpers ------------------------------------------------------------

type Extra = Record<string, unknown>;
export const Obj = <P extends TProperties>(props: P, description: string, extra: Extra = {}) =>
  Type.Object(props, { description, additionalProperties: undefined, ...extra });
export const Str = (description: string, extra: Extra = {}) => Type.String({ description, ...extra });
export const Int = (description: string, extra: Extra = {}) => Type.Integer({ description, ...extra });
export const Enum = <T extends string>(values: readonly T[], description: string, extra: Extra = {}) =>
  Type.Unsafe<T>({ type: "string", enum: [...values], description, ...extra });
export const StringMap = (description: string) =>
  Type.Unsafe<Record<string, string>>({ type: "object", additionalProperties: { type: "string" }, description });
const FreeForm = (description: string) =>
  Type.Unsafe<Record<string, unknown>>({ type: "object", "x-kubernetes-preserve-unknown-fields": true, description });
const Quantities = (description: string) =>
  Type.Unsafe<Record<string, string | number>>({
    type: "object",
    additionalProperties: { "x-kubernetes-int-or-string": true, anyOf: [{ type: "integer" }, { type: "string" }] },
    description,
  });
export const List = <T extends TSchema>(item: T, description: string, extra: Extra = {}) =>
  Type.Array(item, { description, ...extra });

export const NAME = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/** A DNS-1123 subdomain: what Kubernetes accepts as an object name. */
export const SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/** The data plane's own listener; a network of that name would replace it (render.ts MANAGEMENT_NETWORK). */
const RESERVED_NETWORK = "management";
/** The Deployment names each network's container port after its first 15 characters (IANA_SVC_NAME). */
const PORT_NAME = (v: string) => `(${v}.size() > 15 ? ${v}.substring(0, 15) : ${v})`;

// ---- shared ---------------------------------------------------------------------------------

// What a CR may name is what the data plane registers (primary names, in each role), so a new
// backend is one file plus a registry line there and nothing here.
const plugins = createRegistry();
export const ENDPOINT_SERVICES = plugins.endpointTypes();
export const BACKEND_SERVICES = plugins.backendTypes();

export const SecretKeyRef = Obj(
  {
    name: Str("Name of a Secret in the resource's namespace.", { minLength: 1 }),
    key: Str("Key within the Secret.", { minLength: 1 }),
  },
  "A key of a Secret in the same namespace.",
);

export const SecretOption = Obj(
  {
    option: Str("Option name the secret value is given to (for example `password` or `hs256_secret`).", {
      minLength: 1,
    }),
    secretKeyRef: SecretKeyRef,
  },
  "An option whose value comes from a Secret: mounted as a file and passed by path, never written into a ConfigMap.",
);

export const ConfigMapKeyRef = Obj(
  {
    name: Str("Name of a ConfigMap in the resource's namespace.", { minLength: 1 }),
    key: Str("Key within the ConfigMap.", { minLength: 1 }),
  },
  "A key of a ConfigMap in the same namespace.",
);

/**
 * An option that names a file (`ca_path`, `public_key_path`, `spec_path`, `tls.cert_path`, ...):
 * the file's content comes from the cluster or the resource, and the option is set to where the
 * data plane finds it. One shape for every file option, so none needs a field of its own.
 */
export const FileOption = Obj(
  {
    option: Str(
      "Option (a path into options, dots for nested tables: `public_key_path`, `tls.ca_path`) that gets the file's path.",
      { minLength: 1, maxLength: 253, pattern: "^[a-z0-9_]+(\\.[a-z0-9_]+)*$" },
    ),
    configMapKeyRef: Type.Optional(ConfigMapKeyRef),
    secretKeyRef: Type.Optional(SecretKeyRef),
    inline: Type.Optional(
      Type.Unsafe<unknown>({
        "x-kubernetes-preserve-unknown-fields": true,
        description:
          "The file's content in the resource: a string as written, anything else (a JOLT spec, say) as JSON.",
      }),
    ),
  },
  "A file option: its content from a ConfigMap key, a Secret key (copied to the gateway's Secret, never to its ConfigMap) or inline.",
  {
    "x-kubernetes-validations": [
      {
        // CEL cannot see the untyped `inline`; with neither ref and no inline, the operator (and
        // the validating webhook) refuses the entry instead.
        rule: "!(has(self.configMapKeyRef) && has(self.secretKeyRef))",
        message: "set exactly one of configMapKeyRef, secretKeyRef and inline",
      },
      {
        // Secret material may only come from a Secret: a private key, and the `<name>_file` form of
        // a secret option (password_file, keys_file, signing_key_file, ...).
        rule: "!(self.option == 'key_path' || self.option.endsWith('.key_path') || self.option.endsWith('_file')) || has(self.secretKeyRef)",
        message: "a private key (key_path) or a secret option's file (*_file) must come from a secretKeyRef",
      },
    ],
  },
);

/** metav1.Condition, as controller-gen emits it. */
export const Condition = Obj(
  {
    type: Str("Condition type (Accepted, ResolvedRefs, Programmed, Ready).", {
      maxLength: 316,
      pattern:
        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    }),
    status: Enum(["True", "False", "Unknown"], "Status of the condition."),
    observedGeneration: Type.Optional(
      Int("The .metadata.generation the condition was computed from.", { format: "int64", minimum: 0 }),
    ),
    lastTransitionTime: Str("When the status last changed.", { format: "date-time" }),
    reason: Str("CamelCase reason for the last transition.", {
      minLength: 1,
      maxLength: 1024,
      pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    }),
    message: Str("Human-readable details.", { maxLength: 32768 }),
  },
  "One aspect of the resource's state.",
);
export type Condition = Static<typeof Condition>;

const Conditions = List(Condition, "Latest observations of the resource's state.", {
  maxItems: 8,
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
});

export const CommonStatus = {
  observedGeneration: Type.Optional(
    Int("The .metadata.generation the operator last reconciled.", { format: "int64", minimum: 0 }),
  ),
  conditions: Type.Optional(Conditions),
};

// ---- HarmonyGateway -----------------------------------------------------------------------

export const CertificateRef = Obj(
  {
    name: Str("Name of a kubernetes.io/tls Secret (tls.crt, tls.key).", { minLength: 1, maxLength: 253 }),
    kind: Type.Optional(Enum(["Secret"], "Only Secret.", { default: "Secret" })),
    group: Type.Optional(Enum([""], "The core API group (empty).", { default: "" })),
    namespace: Type.Optional(
      Str(
        "Accepted for Gateway API compatibility; only the gateway's own namespace is allowed (another is reported as RefNotPermitted).",
        { maxLength: 63, pattern: NAME },
      ),
    ),
  },
  "A certificate and key for the listener, as a Gateway API listener names them.",
);

export const GatewayNetworkTls = Obj(
  {
    certificateRefs: List(
      CertificateRef,
      "The listener's certificate (one; renewals are picked up without a restart).",
      {
        minItems: 1,
        maxItems: 1,
      },
    ),
  },
  "HTTPS on this network: TLS 1.2+, HTTP/2 offered by ALPN.",
);

export const GatewayNetwork = Obj(
  {
    name: Str("Network name; pipelines attach to it by name.", {
      pattern: NAME,
      maxLength: 63,
      "x-kubernetes-validations": [
        {
          rule: `self != '${RESERVED_NETWORK}'`,
          message: `"${RESERVED_NETWORK}" is reserved for the management listener`,
        },
        {
          // Its first 15 characters name a container port: a letter, no "--", no trailing "-".
          rule: `${PORT_NAME("self")}.matches('[a-z]') && !${PORT_NAME("self")}.contains('--') && !${PORT_NAME("self")}.endsWith('-')`,
          message: "the first 15 characters name a container port: they need a letter, and no '--' or trailing '-'",
        },
      ],
    }),
    port: Int("Container port the listener binds.", { minimum: 1, maximum: 65535 }),
    bindAddress: Type.Optional(
      Str("IP address to bind inside the pod (default 0.0.0.0).", {
        maxLength: 45,
        "x-kubernetes-validations": [{ rule: "isIP(self)", message: "must be an IPv4 or IPv6 address" }],
      }),
    ),
    tls: Type.Optional(GatewayNetworkTls),
  },
  "A listener of the data plane.",
);

const IntOrPercent = (description: string) =>
  Type.Unsafe<number | string>({
    "x-kubernetes-int-or-string": true,
    // int-or-string allows exactly this anyOf; the shape is checked by CEL instead.
    anyOf: [{ type: "integer" }, { type: "string" }],
    description,
    "x-kubernetes-validations": [
      {
        rule: "type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",
        message: "a non-negative number or a percentage such as 50%",
      },
    ],
  });

export const GatewayService = Obj(
  {
    type: Type.Optional(Enum(["ClusterIP", "NodePort", "LoadBalancer"], "Service type.", { default: "ClusterIP" })),
    annotations: Type.Optional(StringMap("Annotations on the Service (cloud load-balancer settings, for example).")),
    labels: Type.Optional(StringMap("Extra labels on the Service; the operator's own labels win on a clash.")),
    loadBalancerClass: Type.Optional(Str("spec.loadBalancerClass (LoadBalancer only; immutable once set).")),
    externalTrafficPolicy: Type.Optional(
      Enum(["Cluster", "Local"], "spec.externalTrafficPolicy (NodePort and LoadBalancer only)."),
    ),
  },
  "The data plane's Service (Deployment mode).",
  {
    "x-kubernetes-validations": [
      {
        rule: "!has(self.loadBalancerClass) || (has(self.type) && self.type == 'LoadBalancer')",
        message: "loadBalancerClass needs type LoadBalancer",
      },
      {
        rule: "!has(self.externalTrafficPolicy) || (has(self.type) && self.type != 'ClusterIP')",
        message: "externalTrafficPolicy needs type NodePort or LoadBalancer",
      },
    ],
  },
);

export const GatewayPod = Obj(
  {
    annotations: Type.Optional(StringMap("Annotations on the data-plane pods.")),
    labels: Type.Optional(StringMap("Extra labels on the data-plane pods; the operator's own labels win on a clash.")),
    nodeSelector: Type.Optional(StringMap("Pod spec.nodeSelector.")),
    tolerations: Type.Optional(List(FreeForm("A core/v1 Toleration."), "Pod spec.tolerations.")),
    affinity: Type.Optional(FreeForm("Pod spec.affinity (core/v1 Affinity).")),
    topologySpreadConstraints: Type.Optional(
      List(FreeForm("A core/v1 TopologySpreadConstraint."), "Pod spec.topologySpreadConstraints."),
    ),
    priorityClassName: Type.Optional(Str("Pod spec.priorityClassName.")),
  },
  "Scheduling and metadata of the data-plane pods (Deployment mode). Changes roll the pods.",
);

export const GatewayPDB = Obj(
  {
    minAvailable: Type.Optional(IntOrPercent("Pods that must stay up during a voluntary disruption (number or %).")),
    maxUnavailable: Type.Optional(IntOrPercent("Pods that may be down during a voluntary disruption (number or %).")),
  },
  "A PodDisruptionBudget for the data-plane pods (Deployment mode); removed when this is unset.",
  {
    "x-kubernetes-validations": [
      {
        rule: "has(self.minAvailable) != has(self.maxUnavailable)",
        message: "set exactly one of minAvailable and maxUnavailable",
      },
    ],
  },
);

export const GatewaySidecar = Obj(
  {
    native: Type.Optional(
      Type.Boolean({
        description:
          "true: inject as a native sidecar (an init container with restartPolicy Always, Kubernetes >= 1.29): it starts, and passes its startup probe, before the app's containers, and does not keep a Job's pod running. false: a plain container, for older clusters.",
        default: true,
      }),
    ),
  },
  "How the sidecar injector adds the data plane (Sidecar mode).",
);

export const HarmonyGatewaySpec = Obj(
  {
    mode: Type.Optional(
      Enum(
        ["Deployment", "Sidecar"],
        "Deployment: the operator runs the data plane. Sidecar: pods labelled for this gateway get it injected.",
        { default: "Deployment" },
      ),
    ),
    // No default: unset means "not ours", so an HPA (or kubectl scale) owns the Deployment's replicas.
    replicas: Type.Optional(
      Int(
        "Data-plane replicas (Deployment mode). Unset: the operator leaves spec.replicas of the Deployment alone (1 when created), so a HorizontalPodAutoscaler or kubectl scale owns it.",
        { minimum: 0 },
      ),
    ),
    image: Type.Optional(Str("Data-plane image; the operator's default when empty.")),
    resources: Type.Optional(
      Obj(
        {
          limits: Type.Optional(Quantities("Resource limits, e.g. cpu: 1, memory: 256Mi.")),
          requests: Type.Optional(Quantities("Resource requests.")),
        },
        "Compute resources of the data-plane container.",
      ),
    ),
    networks: List(GatewayNetwork, "Listeners. Pipelines name the networks they serve on.", {
      minItems: 1,
      maxItems: 16,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
      "x-kubernetes-validations": [
        { rule: "self.all(a, self.exists_one(b, b.port == a.port))", message: "each network needs its own port" },
        {
          rule: `self.all(a, self.exists_one(b, ${PORT_NAME("b.name")} == ${PORT_NAME("a.name")}))`,
          message: "network names must differ in their first 15 characters (they name container ports)",
        },
      ],
    }),
    service: Type.Optional(GatewayService),
    pod: Type.Optional(GatewayPod),
    podDisruptionBudget: Type.Optional(GatewayPDB),
    sidecar: Type.Optional(GatewaySidecar),
    management: Type.Optional(
      Obj(
        {
          port: Type.Optional(
            Int("Management port (/healthz, /readyz, /metrics, /admin).", {
              minimum: 1,
              maximum: 65535,
              default: 9090,
            }),
          ),
          basePath: Type.Optional(Str("Admin API prefix.", { default: "/admin", pattern: "^/[A-Za-z0-9/_-]*$" })),
        },
        "Management listener.",
      ),
    ),
    logLevel: Type.Optional(
      Enum(["trace", "debug", "info", "warn", "error"], "Data-plane log level.", { default: "info" }),
    ),
    pipelineSelector: Type.Optional(
      Obj(
        { matchLabels: Type.Optional(StringMap("Labels a pipeline must carry.")) },
        "Which pipelines referencing this gateway it serves (all when empty).",
      ),
    ),
    allowedNamespaces: Type.Optional(
      List(
        Str("Namespace name."),
        "Other namespaces whose pipelines may attach (explicit opt-in; the gateway's own namespace always may).",
      ),
    ),
  },
  "Where traffic enters: the data-plane deployment and its listeners.",
  {
    "x-kubernetes-validations": [
      {
        // 9090 when unset: the management listener is always there.
        rule: "self.networks.all(n, n.port != (has(self.management) && has(self.management.port) ? self.management.port : 9090))",
        message: "management.port must differ from every network port (it is 9090 when unset)",
        fieldPath: ".management.port",
      },
    ],
  },
);

export const HarmonyGatewayStatus = Obj(
  {
    ...CommonStatus,
    configHash: Type.Optional(Str("sha256 of the rendered data-plane config.")),
    configMapName: Type.Optional(Str("ConfigMap holding the rendered config.")),
    pipelines: Type.Optional(Int("Pipelines in the rendered config.", { minimum: 0 })),
    servingReplicas: Type.Optional(Int("Data-plane pods serving configHash.", { minimum: 0 })),
  },
  "Observed state.",
);

// ---- HarmonyEndpoint ----------------------------------------------------------------------

export const HarmonyEndpointSpec = Obj(
  {
    service: Enum(ENDPOINT_SERVICES, "Protocol of this entry point."),
    pathPrefix: Type.Optional(Str("Path prefix served (HTTP-based services).", { pattern: "^/" })),
    methods: Type.Optional(List(Str("HTTP method.", { pattern: "^[A-Z]+$" }), "Methods accepted (any when empty).")),
    aeTitle: Type.Optional(Str("Called AE title (dicom).", { minLength: 1, maxLength: 16 })),
    port: Type.Optional(Int("DIMSE listener port (dicom).", { minimum: 1, maximum: 65535 })),
    options: Type.Optional(FreeForm("Further service options, passed to the data plane as written.")),
  },
  "A public route and its protocol.",
  {
    "x-kubernetes-validations": [
      {
        rule: "self.service == 'dicom' ? (has(self.aeTitle) && has(self.port)) : has(self.pathPrefix)",
        message: "pathPrefix is required for HTTP-based services; dicom endpoints need aeTitle and port",
      },
    ],
  },
);

export const HarmonyEndpointStatus = Obj(
  {
    ...CommonStatus,
    pipelines: Type.Optional(Int("HarmonyPipelines in this namespace that use this endpoint.", { minimum: 0 })),
    uri: Type.Optional(
      Str(
        "Global URI harmony://<network domain>/<org>/<endpoint> (the first HarmonyNetwork by name whose member org this namespace is).",
      ),
    ),
    uris: Type.Optional(List(Str("URI."), "The endpoint's URI in every HarmonyNetwork its org is a member of.")),
  },
  "Observed state.",
);

// ---- HarmonyPipeline ----------------------------------------------------------------------

export const PipelineMiddleware = Obj(
  {
    name: Str("Instance name, unique in the pipeline.", { pattern: NAME, maxLength: 63 }),
    type: Str("Middleware type (passthru, jwt_auth, basic_auth, transform, ...).", { minLength: 1 }),
    options: Type.Optional(FreeForm("Options of the middleware type.")),
    secretOptions: Type.Optional(List(SecretOption, "Options whose values come from Secrets.")),
    fileOptions: Type.Optional(List(FileOption, "Options that name files, with the files' content.", { maxItems: 32 })),
  },
  "One middleware step.",
);

export const PipelineBackend = Obj(
  {
    service: Enum(BACKEND_SERVICES, "Protocol spoken to the upstream."),
    url: Type.Optional(Str("Upstream base URL (http, fhir, dicomweb).", { pattern: "^https?://" })),
    target: Type.Optional(
      Str(
        "Instead of url: an endpoint's global URI (`harmony://<network domain>/<org>/<endpoint>`), reached through the network's directory with mutual TLS.",
        { pattern: "^harmony://", maxLength: 512 },
      ),
    ),
    options: Type.Optional(FreeForm("Further backend options, passed to the data plane as written.")),
    secretOptions: Type.Optional(List(SecretOption, "Options whose values come from Secrets.")),
    fileOptions: Type.Optional(
      List(FileOption, "Options that name files (`tls.ca_path`, `tls.cert_path`, ...), with the files' content.", {
        maxItems: 32,
      }),
    ),
  },
  "Where requests go.",
  {
    "x-kubernetes-validations": [
      {
        rule: "!(self.service in ['http', 'fhir', 'dicomweb']) || has(self.url) || has(self.target)",
        message: "url (or target) is required for http, fhir and dicomweb backends",
        fieldPath: ".url",
      },
      { rule: "!(has(self.url) && has(self.target))", message: "url and target are exclusive", fieldPath: ".target" },
    ],
  },
);

export const HarmonyPipelineSpec = Obj(
  {
    gatewayRef: Obj(
      {
        name: Str("HarmonyGateway name.", { minLength: 1, maxLength: 253, pattern: SUBDOMAIN }),
        namespace: Type.Optional(
          Str("Gateway namespace (default: this pipeline's; the gateway must allow it).", {
            maxLength: 63,
            pattern: NAME,
          }),
        ),
      },
      "The gateway that serves this pipeline.",
    ),
    description: Type.Optional(Str("What the pipeline is for.")),
    networks: Type.Optional(
      List(
        Str("Network name.", {
          pattern: NAME,
          maxLength: 63,
          "x-kubernetes-validations": [
            { rule: `self != '${RESERVED_NETWORK}'`, message: `"${RESERVED_NETWORK}" is the management listener` },
          ],
        }),
        "Gateway networks to serve on (default: all of them).",
      ),
    ),
    endpoints: List(
      Obj({ name: Str("HarmonyEndpoint name in this namespace.", { minLength: 1 }) }, "Endpoint reference."),
      "Entry points.",
      { minItems: 1 },
    ),
    middleware: Type.Optional(
      List(PipelineMiddleware, "Steps in request order; the response passes back through them in reverse.", {
        maxItems: 32,
        // Names are unique: the API server enforces map-list keys itself, at no CEL cost.
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
      }),
    ),
    backends: List(PipelineBackend, "The upstream (one per pipeline in this version).", { minItems: 1, maxItems: 1 }),
  },
  "Endpoints → middleware → backend.",
);

export const HarmonyPipelineStatus = Obj({ ...CommonStatus }, "Observed state.");

// ---- resources ----------------------------------------------------------------------------

interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

interface Resource<K extends string, S, T> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
  status?: T;
}

export type HarmonyGateway = Resource<
  "HarmonyGateway",
  Static<typeof HarmonyGatewaySpec>,
  Static<typeof HarmonyGatewayStatus>
>;
export type HarmonyEndpoint = Resource<
  "HarmonyEndpoint",
  Static<typeof HarmonyEndpointSpec>,
  Static<typeof HarmonyEndpointStatus>
>;
export type HarmonyPipeline = Resource<
  "HarmonyPipeline",
  Static<typeof HarmonyPipelineSpec>,
  Static<typeof HarmonyPipelineStatus>
>;
export type HarmonyResource = HarmonyGateway | HarmonyEndpoint | HarmonyPipeline;

export interface KindInfo {
  kind: HarmonyResource["kind"] | "HarmonyNetwork";
  plural: string;
  singular: string;
  shortNames: string[];
  spec: TSchema;
  status: TSchema;
  description: string;
  /** Namespaced unless said otherwise. */
  scope?: "Namespaced" | "Cluster";
  /** Extra printer columns besides Ready, Reason, Age. */
  columns: { name: string; type: string; jsonPath: string; priority?: number; description: string }[];
}

export const KINDS: KindInfo[] = [
  {
    kind: "HarmonyGateway",
    plural: "harmonygateways",
    singular: "harmonygateway",
    shortNames: ["hgw"],
    spec: HarmonyGatewaySpec,
    status: HarmonyGatewayStatus,
    description: "A Harmony data-plane deployment: where traffic enters.",
    columns: [
      { name: "Mode", type: "string", jsonPath: ".spec.mode", description: "Deployment or Sidecar." },
      { name: "Pipelines", type: "integer", jsonPath: ".status.pipelines", description: "Pipelines rendered." },
      {
        name: "Hash",
        type: "string",
        jsonPath: ".status.configHash",
        priority: 1,
        description: "Rendered config hash.",
      },
    ],
  },
  {
    kind: "HarmonyEndpoint",
    plural: "harmonyendpoints",
    singular: "harmonyendpoint",
    shortNames: ["hep"],
    spec: HarmonyEndpointSpec,
    status: HarmonyEndpointStatus,
    description: "A public route and its protocol.",
    columns: [
      { name: "Service", type: "string", jsonPath: ".spec.service", description: "Protocol." },
      { name: "Path", type: "string", jsonPath: ".spec.pathPrefix", description: "Path prefix." },
      { name: "Pipelines", type: "integer", jsonPath: ".status.pipelines", description: "Pipelines using it." },
    ],
  },
  {
    kind: "HarmonyPipeline",
    plural: "harmonypipelines",
    singular: "harmonypipeline",
    shortNames: ["hpl"],
    spec: HarmonyPipelineSpec,
    status: HarmonyPipelineStatus,
    description: "Endpoints, middleware and a backend, served by a gateway.",
    columns: [{ name: "Gateway", type: "string", jsonPath: ".spec.gatewayRef.name", description: "Serving gateway." }],
  },
];
