/**
 * A FHIR XML upstream: Python's http.server (an independent HTTP server) serving FHIR XML Bundles
 * from files. The Bundles are HL7's official R4 search example (hl7.fhir.r4.examples, JSON only)
 * written out in FHIR's XML syntax by `fhirXml` below, with their links moved onto this server's
 * base so that paging would leave a gateway unless it rewrites them.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { run, type Proc } from "./process.js";
import { ROOT, tempDir } from "../../dataplane/test/helpers.js";

export interface StaticServer {
  /** http://127.0.0.1:<port> */
  origin: string;
  /** Writes `rel` (a URL path below the origin, no query) with `content`. */
  put(rel: string, content: string): void;
  close(): Promise<void>;
}

// Files without an extension are FHIR XML; others keep Python's guess (.xml: application/xml or text/xml).
const SERVER = `
import functools, http.server as s, sys
class H(s.SimpleHTTPRequestHandler):
    extensions_map = {"": "application/fhir+xml"}
    def log_message(self, *a): pass
srv = s.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=sys.argv[1]))
print(srv.server_address[1], flush=True)
srv.serve_forever()
`;

export async function startStaticServer(): Promise<StaticServer> {
  const dir = tempDir("harmony-fhir-xml-");
  const p: Proc = run("python3", ["-c", SERVER, dir]);
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    p.proc.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /^(\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    p.proc.once("exit", (code) => reject(new Error(`python3 http.server exited (${code}): ${p.log()}`)));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    put(rel, content) {
      // http.server maps the percent-decoded path onto the directory, as we do here.
      const file = join(dir, decodeURIComponent(rel));
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, content);
    },
    close: () => p.stop(),
  };
}

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);

/**
 * A FHIR resource in FHIR's XML syntax (https://hl7.org/fhir/R4/xml.html): primitives are
 * `value` attributes, arrays repeat the element, a contained resource is wrapped in an element
 * named by its type, the narrative `div` is XHTML as is, and `extension.url` is an attribute.
 */
export function fhirXml(resource: { [k: string]: Json }, root = true): string {
  const type = resource.resourceType as string;
  const ns = root ? ' xmlns="http://hl7.org/fhir"' : "";
  return `<${type}${ns}>${children(resource)}</${type}>`;
}

function children(o: { [k: string]: Json }): string {
  let out = "";
  for (const [k, v] of Object.entries(o)) {
    if (k === "resourceType") continue;
    if (k.startsWith("_")) throw new Error(`primitive extensions (${k}) are not written by this converter`);
    for (const item of Array.isArray(v) ? v : [v]) out += element(k, item);
  }
  return out;
}

function element(name: string, v: Json): string {
  if (v === null) return "";
  if (typeof v !== "object") return name === "div" ? String(v) : `<${name} value="${esc(String(v))}"/>`;
  if (Array.isArray(v)) throw new Error(`nested array in ${name}`);
  if (typeof v.resourceType === "string") return `<${name}>${fhirXml(v, false)}</${name}>`;
  const { url, ...rest } = v;
  const attr = name === "extension" && typeof url === "string" ? ` url="${esc(url)}"` : "";
  const body = attr ? children(rest) : children(v);
  return `<${name}${attr}>${body}</${name}>`;
}

export interface FhirXmlPages {
  origin: string;
  /** The server's FHIR base path; it holds an `&`, which FHIR XML has to write as `&amp;`. */
  path: string;
  /** origin + path, as the server's XML spells it */
  escapedBase: string;
  close(): Promise<void>;
}

/**
 * Two pages of HL7's searchset example (Bundle-bundle-example) as FHIR XML on a static server:
 * `<base>/MedicationRequest` (also as `<base>/bundle.xml`) whose `next` is `<base>/_page/2?…`.
 */
export async function startFhirXmlPages(): Promise<FhirXmlPages> {
  const server = await startStaticServer();
  const path = "/r4&co";
  const base = server.origin + path;
  const example = readFileSync(join(ROOT, "node_modules/hl7.fhir.r4.examples/Bundle-bundle-example.json"), "utf8");
  const page1 = JSON.parse(example.replaceAll("https://example.com/base", base)) as {
    [k: string]: Json;
    link: { relation: string; url: string }[];
    entry: Json[];
  };
  const self = page1.link.find((l) => l.relation === "self")!.url;
  const next = `${base}/_page/2?searchId=ff15fd40-ff71-4b48-b366-09c706bed9d0&page=2`;
  page1.link = [
    { relation: "self", url: self },
    { relation: "next", url: next },
  ];
  const page2 = {
    ...page1,
    link: [
      { relation: "self", url: next },
      { relation: "previous", url: self },
    ],
    entry: page1.entry.slice(1),
  };
  const doc = (b: { [k: string]: Json }) => `<?xml version="1.0" encoding="UTF-8"?>\n${fhirXml(b)}\n`;
  server.put(`${path}/MedicationRequest`, doc(page1));
  server.put(`${path}/bundle.xml`, doc(page1));
  server.put(`${path}/_page/2`, doc(page2));
  return { origin: server.origin, path, escapedBase: esc(base), close: () => server.close() };
}
