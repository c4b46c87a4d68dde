/**
 * What a request does, in the terms network policies are written in: the HTTP method and path,
 * the FHIR interaction and resource type, or the DICOM command (a DICOMweb request counts as the
 * DIMSE command it stands for: QIDO-RS = C-FIND, WADO-RS = C-GET, STOW-RS = C-STORE).
 */

export type DicomCommand = "C-FIND" | "C-STORE" | "C-MOVE" | "C-GET" | "C-ECHO";

export interface Operation {
  /** The destination endpoint's protocol. */
  protocol: "http" | "fhir" | "dicomweb" | "dicom";
  /** HTTP method (absent for DIMSE). */
  method?: string;
  /** Path below the endpoint's path_prefix, starting with `/` (absent for DIMSE). */
  path?: string;
  interaction?: string;
  resourceType?: string;
  command?: DicomCommand;
}

const RESOURCE_TYPE = /^[A-Z][A-Za-z]+$/;

/**
 * The FHIR R4 RESTful interaction of a request (https://hl7.org/fhir/R4/http.html). A POST to the
 * base is a batch or a transaction, told apart only by the Bundle's type: it is "transaction"
 * here, and a rule naming "batch" matches it too (operations.ts matchesInteraction).
 */
export function fhirInteraction(method: string, path: string): { interaction: string; resourceType?: string } {
  const s = path.split("/").filter((x) => x !== "");
  const type = s[0] !== undefined && RESOURCE_TYPE.test(s[0]) ? s[0] : undefined;
  const withType = (interaction: string) => (type ? { interaction, resourceType: type } : { interaction });
  if (s.some((x) => x.startsWith("$"))) return withType("operation");
  const m = method === "HEAD" ? "GET" : method;
  if (m === "GET") {
    if (s.length === 0) return { interaction: "search-system" };
    if (s.length === 1 && s[0] === "metadata") return { interaction: "capabilities" };
    if (s.length === 1 && s[0] === "_history") return { interaction: "history-system" };
    if (s.length === 1) return withType("search-type");
    if (s.length === 2 && s[1] === "_history") return withType("history-type");
    if (s.length === 2) return withType("read");
    if (s.length === 3 && s[2] === "_history") return withType("history-instance");
    if (s.length === 4 && s[2] === "_history") return withType("vread");
    return withType("unknown");
  }
  if (m === "POST") {
    if (s.length === 0) return { interaction: "transaction" };
    if (s.length === 1 && s[0] === "_search") return { interaction: "search-system" };
    if (s.length === 2 && s[1] === "_search") return withType("search-type");
    if (s.length === 1) return withType("create");
    return withType("unknown");
  }
  if (m === "PUT") return withType("update");
  if (m === "PATCH") return withType("patch");
  if (m === "DELETE") return withType("delete");
  return withType("unknown");
}

const QIDO_LAST = new Set(["studies", "series", "instances"]);

/** The DIMSE command a DICOMweb request stands for, or undefined (DELETE, OPTIONS: HTTP rules only). */
export function dicomwebCommand(method: string, path: string): DicomCommand | undefined {
  if (method === "POST") return "C-STORE";
  if (method !== "GET" && method !== "HEAD") return undefined;
  const s = path.split("/").filter((x) => x !== "");
  // A search ends in a collection name (/studies, /studies/1.2/series); anything naming one
  // resource or its parts (metadata, frames, rendered, bulk data) is a retrieve.
  return s.length > 0 && QIDO_LAST.has(s[s.length - 1]!) ? "C-FIND" : "C-GET";
}

/** Describes an HTTP request arriving for an endpoint of `protocol`. */
export function httpOperation(protocol: Operation["protocol"], method: string, path: string): Operation {
  const op: Operation = { protocol, method, path };
  if (protocol === "fhir") Object.assign(op, fhirInteraction(method, path));
  else if (protocol === "dicomweb") {
    const command = dicomwebCommand(method, path);
    if (command) op.command = command;
  }
  return op;
}

/** One line for logs and denials: "GET /Patient/1 (fhir read Patient)". */
export function describeOperation(op: Operation): string {
  const parts: string[] = [];
  if (op.method) parts.push(`${op.method} ${op.path ?? ""}`);
  if (op.interaction) parts.push(`(fhir ${op.interaction}${op.resourceType ? ` ${op.resourceType}` : ""})`);
  else if (op.command) parts.push(op.method ? `(${op.command})` : op.command);
  return parts.join(" ");
}
