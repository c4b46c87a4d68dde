/**
 * Request bodies read as data, for middleware that transforms or inspects them: JSON, XML, form,
 * CSV and multipart/form-data, each bounded by `proxy.content_limits`. XML never expands entities
 * (a DOCTYPE that declares any is refused), CSV cells that a spreadsheet would run as formulas are
 * defused, and multipart files are summarised (size, sha256), not held as data.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import busboy from "busboy";
import { parse as parseCsv } from "csv-parse/sync";
import { XMLParser } from "fast-xml-parser";
import { HttpError, problemType } from "./errors.js";
import type { RequestBody } from "./body.js";

export interface ParseLimits {
  maxXmlDepth: number;
  maxCsvRows: number;
  maxMultipartFiles: number;
  maxFormFields: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = {
  maxXmlDepth: 100,
  maxCsvRows: 10_000,
  maxMultipartFiles: 10,
  maxFormFields: 1000,
};

export type Parsed =
  | { format: "json"; value: unknown }
  | { format: "xml"; value: unknown }
  | { format: "form"; value: Record<string, string | string[]> }
  | { format: "csv"; value: { rows: Record<string, string>[]; row_count: number } }
  | { format: "multipart"; value: { fields: Record<string, string | string[]>; files: FileSummary[] } }
  | { format: "binary"; value: { content_type: string; size: number; checksum: string } };

interface FileSummary {
  name: string;
  filename: string;
  content_type: string;
  size: number;
  checksum: string;
}

const bad = (detail: string) => new HttpError(400, detail, { type: problemType("bad-body") });
const tooMany = (detail: string) => new HttpError(413, detail, { type: problemType("body-too-large") });
const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function add(target: Record<string, string | string[]>, k: string, v: string): void {
  const cur = target[k];
  target[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
}

/** Deepest element nesting of an XML text (comments, CDATA, PIs and self-closing tags skipped). */
function xmlDepth(text: string): number {
  let depth = 0;
  let max = 0;
  const re = /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<\?[\s\S]*?\?>|<!DOCTYPE[^>]*>|<(\/?)[^>]*?(\/?)>/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] === undefined) continue; // comment, CDATA, PI, DOCTYPE
    if (m[1] === "/") depth--;
    else if (m[2] !== "/") max = Math.max(max, ++depth);
  }
  return max;
}

/** Cells a spreadsheet would evaluate (=, +, -, @, tab, CR at the start) get a leading quote. */
const defuse = (v: string) => (/^[=+\-@\t\r]/.test(v) ? `'${v}` : v);

export async function parseBody(body: RequestBody, limits: ParseLimits): Promise<Parsed | undefined> {
  if (!body.present && !body.isBuffered) return undefined;
  const ct = (body.contentType ?? "application/octet-stream").toLowerCase();
  if (body.isJson) {
    const value = await body.json();
    return value === undefined ? undefined : { format: "json", value };
  }
  const buf = await body.buffer();
  if (buf.length === 0) return undefined;
  const type = ct.split(";")[0]!.trim();

  if (type === "application/xml" || type === "text/xml" || type.endsWith("+xml")) {
    const text = buf.toString("utf8");
    if (/<!DOCTYPE[\s\S]*?<!ENTITY/i.test(text) || /<!ENTITY/i.test(text))
      throw bad("XML entity declarations are not accepted");
    if (xmlDepth(text) > limits.maxXmlDepth) throw bad(`XML nests deeper than ${limits.maxXmlDepth} levels`);
    try {
      const parser = new XMLParser({
        ignoreAttributes: false,
        attributeNamePrefix: "@",
        processEntities: false,
        allowBooleanAttributes: true,
      });
      return { format: "xml", value: parser.parse(text, true) as unknown };
    } catch (e) {
      throw bad(`XML body is not well-formed: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  if (type === "application/x-www-form-urlencoded") {
    const value: Record<string, string | string[]> = {};
    let n = 0;
    for (const [k, v] of new URLSearchParams(buf.toString("utf8"))) {
      if (++n > limits.maxFormFields) throw tooMany(`more than ${limits.maxFormFields} form fields`);
      add(value, k, v);
    }
    return { format: "form", value };
  }
  if (type === "text/csv") {
    let rows: Record<string, string>[];
    try {
      rows = parseCsv<Record<string, string>>(buf, {
        columns: true,
        skip_empty_lines: true,
        to: limits.maxCsvRows + 1,
        bom: true,
      });
    } catch (e) {
      throw bad(`CSV body is not valid: ${(e as Error).message}`);
    }
    if (rows.length > limits.maxCsvRows) throw tooMany(`more than ${limits.maxCsvRows} CSV rows`);
    const safe = rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [defuse(k), defuse(v)])));
    return { format: "csv", value: { rows: safe, row_count: safe.length } };
  }
  if (type === "multipart/form-data") {
    return { format: "multipart", value: await multipart(buf, ct, limits) };
  }
  return { format: "binary", value: { content_type: type, size: buf.length, checksum: sha256(buf) } };
}

function multipart(
  buf: Buffer,
  contentType: string,
  limits: ParseLimits,
): Promise<{ fields: Record<string, string | string[]>; files: FileSummary[] }> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: { "content-type": contentType },
        limits: {
          files: limits.maxMultipartFiles,
          fields: limits.maxFormFields,
          parts: limits.maxMultipartFiles + limits.maxFormFields,
        },
      });
    } catch (e) {
      return reject(bad(`multipart body: ${(e as Error).message}`));
    }
    const fields: Record<string, string | string[]> = {};
    const files: FileSummary[] = [];
    let failed = false;
    const fail = (e: HttpError) => {
      if (!failed) {
        failed = true;
        reject(e);
      }
    };
    bb.on("field", (name, value) => add(fields, name, value));
    bb.on("file", (name, stream, info) => {
      const hash = createHash("sha256");
      let size = 0;
      stream.on("data", (c: Buffer) => {
        size += c.length;
        hash.update(c);
      });
      stream.on("end", () =>
        files.push({
          name,
          filename: info.filename ?? "",
          content_type: info.mimeType,
          size,
          checksum: `sha256:${hash.digest("hex")}`,
        }),
      );
    });
    bb.on("filesLimit", () => fail(tooMany(`more than ${limits.maxMultipartFiles} files`)));
    bb.on("fieldsLimit", () => fail(tooMany(`more than ${limits.maxFormFields} form fields`)));
    bb.on("partsLimit", () => fail(tooMany("too many parts")));
    bb.on("error", (e: Error) => fail(bad(`multipart body: ${e.message}`)));
    bb.on("close", () => {
      if (!failed) resolve({ fields, files });
    });
    Readable.from([buf]).pipe(bb);
  });
}
