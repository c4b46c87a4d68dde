/**
 * The `fhir` backend's URL rewriting as bodies stream through (dataplane/src/backends/url-rewrite.ts):
 * a 36 MB Bundle starts reaching the client before the upstream has finished sending it and the
 * data plane's memory stays far below its size; FHIR XML Bundles from an independent server
 * (Python's http.server serving HL7's official example) come back with their paging links on the
 * gateway and a client pages through it; an upstream base split at every offset across chunks is
 * still rewritten; and a gzip response the upstream sent anyway is rewritten too.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { startFhirXmlPages, type FhirXmlPages } from "./peers/fhir-xml-server.js";
import {
  baseConfig,
  http,
  memoryOf,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "../dataplane/test/helpers.js";

type Upstream = Awaited<ReturnType<typeof startUpstream>>;
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let up: Upstream;
let xml: FhirXmlPages;
let dp: Dataplane;
/** What the in-process upstream answers next (each test sets its own). */
let answer: Handler = (_req, res) => void res.writeHead(404).end();

const upBase = () => `${up.url}/fhir`;
const gw = (p: string) => dp.url("default", p);

before(async () => {
  up = await startUpstream((req, res) => answer(req, res));
  xml = await startFhirXmlPages();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.stream]
networks = ["default"]
endpoints = ["stream_in"]
backends = ["stream_out"]

[endpoints.stream_in]
service = "fhir"
options = { path_prefix = "/stream" }

[backends.stream_out]
service = "fhir"
options = { base_url = "${up.url}/fhir" }

[pipelines.dumped]
networks = ["default"]
endpoints = ["dumped_in"]
middleware = ["dump"]
backends = ["dumped_out"]

[endpoints.dumped_in]
service = "fhir"
options = { path_prefix = "/dumped" }

[middleware.dump]
type = "log_dump"
options = { apply = "right", label = "rewritten" }

[backends.dumped_out]
service = "fhir"
options = { base_url = "${up.url}/fhir" }

[pipelines.xml]
networks = ["default"]
endpoints = ["xml_in"]
backends = ["xml_out"]

[endpoints.xml_in]
service = "fhir"
options = { path_prefix = "/fhirxml" }

[backends.xml_out]
service = "fhir"
options = { base_url = "${xml.origin}${xml.path}" }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await xml?.close();
  await up?.close();
});

/** A searchset Bundle of `n` entries whose URLs all start with `base`; every 3rd one spells `/` as `\/`. */
function bigBundle(base: string, n: number, pad: number): { body: Buffer; entries: number } {
  const filler = "x".repeat(pad);
  const parts: string[] = [
    `{"resourceType":"Bundle","type":"searchset","total":${n},"link":[`,
    `{"relation":"self","url":"${base}/Patient?_count=${n}"},{"relation":"next","url":"${base}/Patient?_count=${n}&_offset=${n}"}],"entry":[`,
  ];
  for (let i = 0; i < n; i++) {
    let e = JSON.stringify({
      fullUrl: `${base}/Patient/p${i}`,
      resource: {
        resourceType: "Patient",
        id: `p${i}`,
        link: [{ type: "seealso", other: { reference: `${base}/Patient/p${i + 1}` } }],
        text: { status: "generated", div: `<div xmlns="http://www.w3.org/1999/xhtml">${filler}</div>` },
      },
      search: { mode: "match" },
    });
    if (i % 3 === 0) e = e.replaceAll(`"${base}/`, `"${base.replaceAll("/", "\\/")}\\/`);
    parts.push(i ? "," + e : e);
  }
  parts.push("]}");
  return { body: Buffer.from(parts.join("")), entries: n };
}

type Bundle = {
  link: { relation: string; url: string }[];
  entry: { fullUrl: string; resource: { id: string; link: { other: { reference: string } }[] } }[];
};

test("a 36 MB Bundle streams: the first bytes reach the client before the upstream has sent the rest, memory stays bounded", async (t) => {
  const { body, entries } = bigBundle(upBase(), 36_000, 700);
  assert.ok(body.length > 36e6, `${body.length} bytes`);
  const half = body.length >> 1;
  let clientGotBytes!: () => void;
  const gotBytes = new Promise<void>((r) => (clientGotBytes = r));
  let upstreamDone = false;
  answer = (_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json", "content-length": body.length });
    // The first half, then nothing more until the client has seen a byte of the answer: a gateway
    // that holds the body whole never sends one, and the exchange cannot complete.
    res.write(body.subarray(0, half), () => {
      void gotBytes.then(() => res.end(body.subarray(half), () => (upstreamDone = true)));
    });
  };
  // The baseline: the same bytes relayed untouched (not a type the backend rewrites). Node's own
  // streaming (socket buffers awaiting GC) sets the process's peak here; a rewrite that streams
  // adds next to nothing to it, one that holds the body adds several copies of it.
  const rewriting = answer;
  answer = (_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.end(body);
  };
  const relayed = await http(gw("/stream/Binary/raw"));
  assert.equal(relayed.body.length, body.length);
  answer = rewriting;
  const peakBefore = memoryOf(dp.pid).hwm;

  const res = await new Promise<IncomingMessage>((resolve, reject) =>
    request(gw("/stream/Patient?_count=36000"), resolve).on("error", reject).end(),
  );
  const chunks: Buffer[] = [];
  let upstreamDoneAtFirstByte: boolean | undefined;
  res.on("data", (c: Buffer) => {
    if (upstreamDoneAtFirstByte === undefined) {
      upstreamDoneAtFirstByte = upstreamDone;
      clientGotBytes();
    }
    chunks.push(c);
  });
  await new Promise((r) => res.once("end", r));
  const peakGrowth = memoryOf(dp.pid).hwm - peakBefore;
  t.diagnostic(
    `${body.length}-byte Bundle: data plane peak RSS ${(peakBefore / 1e6).toFixed(1)} MB after relaying it untouched, ` +
      `${((peakBefore + peakGrowth) / 1e6).toFixed(1)} MB after rewriting it`,
  );
  assert.equal(res.statusCode, 200);
  assert.equal(upstreamDoneAtFirstByte, false, "the first byte arrived while the upstream was still sending");
  assert.equal(res.headers["content-length"], undefined, "lengths change: the rewritten body is sent chunked");

  const text = Buffer.concat(chunks).toString("utf8");
  assert.ok(!text.includes(up.url) && !text.includes(up.url.replaceAll("/", "\\/")), "no upstream URL is left");
  const bundle = JSON.parse(text) as Bundle; // still valid JSON
  const base = gw("/stream");
  assert.deepEqual(
    bundle.link.map((l) => l.url),
    [`${base}/Patient?_count=36000`, `${base}/Patient?_count=36000&_offset=36000`],
  );
  assert.equal(bundle.entry.length, entries);
  bundle.entry.forEach((e, i) => {
    assert.equal(e.fullUrl, `${base}/Patient/p${i}`);
    assert.equal(e.resource.link[0]!.other.reference, `${base}/Patient/p${i + 1}`);
  });
  // A gateway that holds the body grows by a multiple of it (chunks, the joined copy, the rewritten
  // copy). Half of it is the line: since the llhttp engine relays into a reused read buffer, the
  // untouched baseline leaves less of Node's streaming garbage behind for the rewrite to reuse, and
  // a streaming rewrite grows by ~11 MB over it (under 9 with undici), a held body by 36 MB at least.
  assert.ok(peakGrowth < body.length / 2, `peak RSS grew by ${peakGrowth} bytes for a ${body.length}-byte body`);
});

test("FHIR XML Bundles (_format=xml): paging links point at the gateway and a client pages through it", async () => {
  const base = gw("/fhirxml");
  const first = await http(gw("/fhirxml/MedicationRequest?patient=347&_count=2&_format=xml"), {
    headers: { accept: "application/fhir+xml" },
  });
  assert.equal(first.status, 200);
  assert.match(String(first.headers["content-type"]), /^application\/fhir\+xml/);
  // Byte for byte the server's document with only its base moved: nothing parsed, no entity expanded.
  const direct = await http(`${xml.origin}${xml.path}/MedicationRequest`);
  assert.ok(direct.text.includes(xml.escapedBase), "the server writes its base XML-escaped (it holds an &)");
  assert.equal(first.text, direct.text.replaceAll(xml.escapedBase, base));
  assert.match(first.text, /&amp;_count=2/, "escaped query separators stay escaped");

  const links = (doc: string) =>
    Object.fromEntries(
      [...doc.matchAll(/<link><relation value="(\w+)"\/><url value="([^"]*)"\/><\/link>/g)].map((m) => [
        m[1]!,
        m[2]!.replaceAll("&amp;", "&"),
      ]),
    );
  const l1 = links(first.text);
  assert.ok(l1.self?.startsWith(`${base}/MedicationRequest?`), l1.self);
  assert.ok(l1.next?.startsWith(`${base}/_page/2?`), l1.next);
  for (const m of first.text.matchAll(/<fullUrl value="([^"]*)"\/>/g)) assert.ok(m[1]!.startsWith(`${base}/`), m[1]);

  // Follow `next` as a client would: through the gateway, to the server's second page.
  const second = await http(l1.next!, { headers: { accept: "application/fhir+xml" } });
  assert.equal(second.status, 200);
  assert.match(second.text, /<Bundle xmlns="http:\/\/hl7.org\/fhir">/);
  const l2 = links(second.text);
  assert.equal(l2.self, l1.next);
  assert.equal(l2.previous, l1.self);
  assert.ok(!second.text.includes(xml.origin), "no upstream URL is left on page 2");

  // The same document as application/xml or text/xml (Python's type for .xml) is rewritten as well.
  const plain = await http(gw("/fhirxml/bundle.xml"));
  assert.match(String(plain.headers["content-type"]), /^(application|text)\/xml/);
  assert.equal(plain.text, direct.text.replaceAll(xml.escapedBase, base));
});

test("an upstream base split across chunks at every offset is still rewritten (JSON, JSON with \\/, XML)", async () => {
  const base = upBase();
  const pub = gw("/stream");
  const slashes = (s: string) => s.replaceAll("/", "\\/");
  // How each corpus writes one URL, where the spelling of the base starts in it, and how to read the URLs back.
  const corpora = [
    { name: "json", type: "application/fhir+json", open: "[", close: "]", item: (u: string) => `"${u}"`, at: 0 },
    {
      name: "json with \\/",
      type: "application/fhir+json",
      open: "[",
      close: "]",
      item: (u: string) => `"${slashes(u)}"`,
      at: 0,
    },
    {
      name: "xml",
      type: "application/fhir+xml",
      open: "<Bundle>",
      close: "</Bundle>",
      item: (u: string) => `<link><url value="${u}"/></link>`,
      at: "<link><url value=".length,
    },
  ];
  for (const c of corpora) {
    const n = c.item(base).length + 1; // a boundary at every offset of the quote + base (+ the byte after)
    const urls = Array.from({ length: n }, (_, i) => `/Patient/${i}`);
    answer = (_req, res) => {
      res.writeHead(200, { "content-type": c.type });
      let carry = c.open;
      urls.forEach((u, i) => {
        const sep = i && c.type.includes("json") ? "," : "";
        const piece = sep + c.item(base + u);
        const cut = sep.length + c.at + i;
        res.write(carry + piece.slice(0, cut)); // each write is its own HTTP chunk
        carry = piece.slice(cut);
      });
      res.end(carry + c.close);
    };
    const got = await http(gw("/stream/Patient"));
    assert.equal(got.status, 200, c.name);
    const back = c.type.includes("json")
      ? (JSON.parse(got.text) as string[])
      : [...got.text.matchAll(/<url value="([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(
      back,
      urls.map((u) => pub + u),
      `${c.name}: every split position rewritten`,
    );
  }
});

test("a gzip body the upstream sends anyway is decoded and rewritten", async () => {
  const doc = JSON.stringify({
    resourceType: "Bundle",
    type: "searchset",
    link: [{ relation: "self", url: `${upBase()}/Patient` }],
  });
  answer = (_req, res) => {
    const z = gzipSync(doc);
    res.writeHead(200, {
      "content-type": "application/fhir+json",
      "content-encoding": "gzip",
      "content-length": z.length,
    });
    res.end(z);
  };
  const got = await http(gw("/stream/Patient"));
  assert.equal(got.status, 200);
  assert.equal(got.headers["content-encoding"], undefined);
  assert.equal((got.json() as Bundle).link[0]!.url, gw("/stream/Patient"));
});

test("with response middleware in the pipeline, they see the rewritten body and the client gets it", async () => {
  const doc = JSON.stringify({
    resourceType: "Bundle",
    type: "searchset",
    link: [{ relation: "self", url: `${upBase()}/Patient` }],
  });
  answer = (_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json", "content-length": Buffer.byteLength(doc) });
    res.end(doc);
  };
  const got = await http(gw("/dumped/Patient"));
  assert.equal(got.status, 200);
  assert.equal((got.json() as Bundle).link[0]!.url, gw("/dumped/Patient"));
  const dumped = await dp.waitForLog((l) => l.message === "log_dump" && l.label === "rewritten");
  assert.equal((dumped.body as Bundle).link[0]!.url, gw("/dumped/Patient"));
});

test("absolute gateway URLs in an XML request body are moved back to the server's base", async () => {
  let received = "";
  answer = (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received = Buffer.concat(chunks).toString("utf8");
      res.writeHead(201, { "content-type": "application/fhir+xml" });
      res.end(received);
    });
  };
  const pub = gw("/stream");
  const doc = `<Observation xmlns="http://hl7.org/fhir"><status value="final"/><subject><reference value="${pub}/Patient/1"/></subject></Observation>`;
  const res = await http(gw("/stream/Observation"), {
    method: "POST",
    headers: { "content-type": "application/fhir+xml" },
    body: doc,
  });
  assert.equal(res.status, 201);
  assert.equal(received, doc.replace(pub, upBase()), "the server got its own base");
  assert.equal(res.text, doc, "and the client its own back");
});
