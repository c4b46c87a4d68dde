import type { ProxyResponse } from "./context.js";

/** Builds a small JSON response (echo backend, middleware short-circuits). */
export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): ProxyResponse {
  const body = Buffer.from(JSON.stringify(value));
  return {
    status,
    headers: { "content-type": "application/json", "content-length": body.length, ...headers },
    body,
  };
}
