/** FHIR's error shape: an OperationOutcome whose issue code says what kind of failure it was (R4 IssueType). */
import type { ServerResponse } from "node:http";
import type { HarmonyProblem } from "../pipeline/errors.js";

export const FHIR_JSON = "application/fhir+json; charset=utf-8";

function issueCode(status: number): string {
  switch (status) {
    case 400:
      return "invalid";
    case 401:
      return "login";
    case 403:
      return "forbidden";
    case 404:
      return "not-found";
    case 405:
    case 406:
    case 415:
      return "not-supported";
    case 408:
    case 504:
      return "timeout";
    case 409:
    case 412:
      return "conflict";
    case 410:
      return "deleted";
    case 413:
      return "too-costly";
    case 422:
      return "processing";
    case 429:
      return "throttled";
    case 502:
    case 503:
      return "transient";
    default:
      return status >= 500 ? "exception" : "invalid";
  }
}

export function operationOutcome(problem: HarmonyProblem, requestId: string): object {
  return {
    resourceType: "OperationOutcome",
    issue: [
      {
        severity: problem.status >= 500 ? "fatal" : "error",
        code: issueCode(problem.status),
        details: { text: problem.title },
        ...(problem.detail ? { diagnostics: problem.detail } : {}),
      },
    ],
    meta: { tag: [{ system: "urn:harmony:request-id", code: requestId }] },
  };
}

export function writeOperationOutcome(res: ServerResponse, problem: HarmonyProblem, requestId: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(operationOutcome(problem, requestId));
  res.writeHead(problem.status, {
    ...problem.headers,
    "content-type": FHIR_JSON,
    "content-length": Buffer.byteLength(body),
    "x-request-id": requestId,
  });
  res.end(body);
}
