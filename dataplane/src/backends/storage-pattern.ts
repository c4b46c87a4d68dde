/**
 * `read_pattern` / `write_pattern` of the `storage` backend: text with `{name}` placeholders,
 * expanded per request into a path relative to the backend's root. Values come from requests
 * (the path, middleware metadata, JSON bodies, DICOM headers), so the expansion is where every
 * escape from the root is stopped: the finished path is checked as a whole, whatever the
 * placeholders held. A path is accepted only when it is relative, every `/`-separated segment is
 * non-empty and does not start with `.` (so no `.`, `..`, hidden files, or our own `.part` temp
 * files), and it holds no NUL, control character or backslash; segments are at most 255 bytes and
 * the path at most 1024 (NAME_MAX, and S3's key limit).
 */
import { randomUUID } from "node:crypto";
import { HttpError, problemType } from "../pipeline/errors.js";

export const MAX_SEGMENT_BYTES = 255;
export const MAX_PATH_BYTES = 1024;

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_.-]*)\}/g;

export type Part = { text: string } | { name: string };

/** A pattern split into literal text and placeholders; an error message when it is malformed. */
export function compilePattern(pattern: string): Part[] | string {
  const parts: Part[] = [];
  let last = 0;
  for (const m of pattern.matchAll(PLACEHOLDER)) {
    if (m.index > last) parts.push({ text: pattern.slice(last, m.index) });
    parts.push({ name: m[1]! });
    last = m.index + m[0].length;
  }
  if (last < pattern.length) parts.push({ text: pattern.slice(last) });
  const literal = parts.map((p) => ("text" in p ? p.text : "")).join("");
  if (/[{}]/.test(literal)) return "has a brace that is not part of a {name} placeholder";
  // The literal text must itself be a confined path (placeholders standing in as plain names).
  const why = pathProblem(parts.map((p) => ("text" in p ? p.text : "x")).join(""));
  return why ? `is not a relative path below root: ${why}` : parts;
}

/** Why a relative path is refused, or undefined when it is confined to the root. */
export function pathProblem(rel: string): string | undefined {
  if (rel.length === 0) return "it is empty";
  if (Buffer.byteLength(rel) > MAX_PATH_BYTES) return `it is longer than ${MAX_PATH_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(rel)) return "it holds a control character";
  if (rel.includes("\\")) return "it holds a backslash";
  if (rel.startsWith("/")) return "it is absolute";
  for (const seg of rel.split("/")) {
    if (seg === "") return "it has an empty segment";
    if (seg.startsWith(".")) return "a segment starts with '.'";
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) return `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  return undefined;
}

/** Where placeholder values come from, first match wins; `uuid` and `timestamp` are built in. */
export type Lookup = (name: string) => string | undefined;

/**
 * The pattern expanded and checked: 400 when a placeholder has no value or the result would leave
 * the root. The detail names placeholders, never the values (they are request data).
 */
export function expandPattern(parts: Part[], lookup: Lookup): string {
  const uuid = randomUUID();
  const timestamp = new Date().toISOString();
  let out = "";
  for (const p of parts) {
    if ("text" in p) {
      out += p.text;
      continue;
    }
    const v = p.name === "uuid" ? uuid : p.name === "timestamp" ? timestamp : lookup(p.name);
    if (v === undefined)
      throw new HttpError(400, `the storage path needs {${p.name}}, which this request does not supply`, {
        type: problemType("storage-path"),
      });
    out += v;
  }
  const why = pathProblem(out);
  if (why)
    throw new HttpError(400, `the storage path is refused: ${why}`, {
      type: problemType("storage-path"),
    });
  return out;
}

/** `{path}`: the request path below the endpoint, percent-decoded (the result is checked like any value). */
export function requestPath(subpath: string): string {
  try {
    return decodeURIComponent(subpath.replace(/^\/+/, ""));
  } catch {
    throw new HttpError(400, "the request path is not valid percent-encoded UTF-8", {
      type: problemType("storage-path"),
    });
  }
}

/** A relative path as an absolute-path URL below `prefix`, each segment percent-encoded. */
export function urlOf(prefix: string, rel: string): string {
  const base = prefix === "/" ? "" : prefix.replace(/\/+$/, "");
  return `${base}/${rel.split("/").map(encodeURIComponent).join("/")}`;
}
