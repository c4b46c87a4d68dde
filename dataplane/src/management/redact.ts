/** Redaction for anything config-shaped that leaves the process (/admin/config, logs). */
const SECRET_KEY =
  /(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|client[_-]?key|jwt[_-]?secret|authorization)$/i;
/** Tables whose every value is a secret (user → password, key lists, inline JWKs). */
const SECRET_TABLE = /^(users|keys|api_keys|jwk|jwks)$/i;
/** Keys that name where a secret lives are not secrets themselves. */
const REFERENCE_KEY = /(_path|_file|_env|_ref|_url)$/i;

export const REDACTED = "<redacted>";

export function redact(value: unknown, key = ""): unknown {
  if (key && SECRET_TABLE.test(key) && value !== null && typeof value === "object") return REDACTED;
  if (Array.isArray(value)) return value.map((v) => redact(v, key));
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redact(v, k);
    return out;
  }
  if (key && SECRET_KEY.test(key) && !REFERENCE_KEY.test(key) && value !== "" && typeof value !== "boolean") {
    return REDACTED;
  }
  if (typeof value === "string" && /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i.test(value)) {
    return value.replace(/\/\/[^/@\s]*@/, `//${REDACTED}@`); // userinfo in URLs
  }
  return value;
}
