/** The built-in plugins. Adding one is a file and a line here. */
import type { BackendPlugin, EndpointPlugin, MiddlewarePlugin } from "./types.js";
import { httpEndpoint } from "../endpoints/http.js";
import { echoEndpoint } from "../endpoints/echo.js";
import { fhirEndpoint } from "../endpoints/fhir.js";
import { dicomwebEndpoint } from "../endpoints/dicomweb.js";
import { dicomEndpoint } from "../endpoints/dicom.js";
import { jmixEndpoint } from "../endpoints/jmix.js";
import { httpBackend } from "../backends/http.js";
import { echoBackend } from "../backends/echo.js";
import { fhirBackend } from "../backends/fhir.js";
import { dicomwebBackend } from "../backends/dicomweb.js";
import { dicomBackend } from "../backends/dicom.js";
import { storageBackend } from "../backends/storage.js";
import { jmixBackend } from "../backends/jmix-backend.js";
import { mockDicomBackend } from "../backends/mock-dicom.js";
import { staticBackend } from "../backends/static.js";
import { redirectBackend } from "../backends/redirect.js";
import { passthru } from "../middleware/passthru.js";
import { jwtAuth } from "../middleware/jwt-auth.js";
import { basicAuth } from "../middleware/basic-auth.js";
import { apiKey } from "../middleware/api-key.js";
import { policies } from "../middleware/policies.js";
import { pathFilter } from "../middleware/path-filter.js";
import { meshAuth } from "../middleware/mesh-auth.js";
import { transform } from "../middleware/transform.js";
import { metadataTransform } from "../middleware/metadata-transform.js";
import { jmixBuilder } from "../middleware/jmix-builder.js";
import { headersMiddleware } from "../middleware/headers.js";
import { logDump } from "../middleware/log-dump.js";
import { webhook } from "../middleware/webhook.js";
import { jsonExtractor } from "../middleware/json-extractor.js";
import { dicomFlatten, dicomUnflatten } from "../middleware/dicom-flatten.js";
import { dicomToDicomweb, dicomwebBridge } from "../middleware/bridge-compat.js";

const endpoints: EndpointPlugin[] = [
  httpEndpoint,
  echoEndpoint,
  fhirEndpoint,
  dicomwebEndpoint,
  dicomEndpoint,
  jmixEndpoint,
];
const backends: BackendPlugin[] = [
  httpBackend,
  echoBackend,
  fhirBackend,
  dicomwebBackend,
  dicomBackend,
  storageBackend,
  jmixBackend,
  mockDicomBackend,
  staticBackend,
  redirectBackend,
];
const middleware: MiddlewarePlugin[] = [
  passthru,
  jwtAuth,
  basicAuth,
  apiKey,
  policies,
  pathFilter,
  meshAuth,
  transform,
  metadataTransform,
  logDump,
  webhook,
  jsonExtractor,
  dicomFlatten,
  dicomUnflatten,
  dicomwebBridge,
  dicomToDicomweb,
  jmixBuilder,
  headersMiddleware,
];

function index<T extends { type: string; aliases?: readonly string[] }>(list: T[]): Map<string, T> {
  const m = new Map<string, T>();
  for (const p of list) for (const n of [p.type, ...(p.aliases ?? [])]) m.set(n.toLowerCase(), p);
  return m;
}

export interface Registry {
  endpoint(type: string | undefined): EndpointPlugin | undefined;
  backend(type: string | undefined): BackendPlugin | undefined;
  middleware(type: string | undefined): MiddlewarePlugin | undefined;
  /** Every type name known in any role, for the 0.4 `[services]` / `[middleware_types]` tables. */
  serviceTypes(): string[];
  middlewareTypes(): string[];
  /** Primary type names (no aliases) per role: what the operator's CRDs offer. */
  endpointTypes(): string[];
  backendTypes(): string[];
}

export function createRegistry(
  extra: { endpoints?: EndpointPlugin[]; backends?: BackendPlugin[]; middleware?: MiddlewarePlugin[] } = {},
): Registry {
  const e = index([...endpoints, ...(extra.endpoints ?? [])]);
  const b = index([...backends, ...(extra.backends ?? [])]);
  const m = index([...middleware, ...(extra.middleware ?? [])]);
  return {
    // A config without the type key (reported by the schema) asks with undefined: no plugin, no throw.
    endpoint: (t) => (typeof t === "string" ? e.get(t.toLowerCase()) : undefined),
    backend: (t) => (typeof t === "string" ? b.get(t.toLowerCase()) : undefined),
    middleware: (t) => (typeof t === "string" ? m.get(t.toLowerCase()) : undefined),
    serviceTypes: () => [...new Set([...e.keys(), ...b.keys()])].sort(),
    middlewareTypes: () => [...m.keys()].sort(),
    endpointTypes: () => [...new Set([...e.values()].map((p) => p.type))].sort(),
    backendTypes: () => [...new Set([...b.values()].map((p) => p.type))].sort(),
  };
}
