/**
 * Two organisations' gateways on loopback, members of one Harmony network: files (identity
 * certificates from one network CA, trust bundle, directory.json) written as the operator would,
 * and configs for gateway A (org-a: apps call harmony:// URIs through it) and gateway B (org-b:
 * serves a FHIR endpoint on its harmony_network listener, in front of a real FHIR server).
 */
import { request } from "node:https";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, startDataplane, tempDir, type Dataplane, type HttpResult } from "../dataplane/test/helpers.js";
import { createCa, issueLeaf, spiffe, type Ca, type Leaf } from "./network-pki.js";
import { TlsBridge } from "../dataplane/src/network/tls-bridge.js";
import { identityOf } from "../dataplane/src/network/identity.js";
import { createLogger } from "../dataplane/src/observability/logger.js";
import { cEcho } from "../dataplane/src/protocols/dimse-client.js";

export const DOMAIN = "hospitals.example";
export const NETWORK = "hospitals";
export const B_FHIR = `harmony://${DOMAIN}/org-b/fhir`;

export interface Gw {
  org: string;
  name: string;
  dir: string;
  leaf: Leaf;
  /** Port of its harmony_network listener. */
  port: number;
}

export interface NetworkFiles {
  ca: Ca;
  a: Gw;
  b: Gw;
  entries: Record<string, unknown>[];
  writeDirectory(gw: Gw, policies?: unknown[], entries?: Record<string, unknown>[]): void;
  writeLeaf(gw: Gw, leaf: Leaf): void;
  writeBundle(gw: Gw, pems: string[]): void;
  /** Config of gateway A: app listener `default`, pipelines /b/fhir (→ B_FHIR) and /nowhere (unknown URI). */
  configA(): string;
  /** Config of gateway B: FHIR endpoint /org-b/fhir on its harmony listener `inter`, to `fhirBase`. */
  configB(fhirBase: string): string;
}

function gw(ca: Ca, org: string, name: string, port: number): Gw {
  return { org, name, dir: tempDir(`harmony-net-${org}-`), leaf: issueLeaf(ca, [spiffe(DOMAIN, org, name)]), port };
}

export async function networkFiles(): Promise<NetworkFiles> {
  const ca = createCa("hospitals network CA");
  const a = gw(ca, "org-a", "gw-a", await freePort());
  const b = gw(ca, "org-b", "gw-b", await freePort());
  const entries = [
    {
      uri: B_FHIR,
      org: "org-b",
      endpoint: "fhir",
      protocol: "fhir",
      address: "127.0.0.1",
      port: b.port,
      path_prefix: "/org-b/fhir",
      identity: spiffe(DOMAIN, "org-b", "gw-b"),
    },
  ];
  const files: NetworkFiles = {
    ca,
    a,
    b,
    entries,
    writeDirectory(g, policies = [], list = entries) {
      const doc = {
        version: 1,
        network: NETWORK,
        domain: DOMAIN,
        // org-a and org-b share a group (default: allowed); org-c is a member of the network only.
        groups: [
          { network: NETWORK, orgs: ["org-a", "org-b"] },
          { network: NETWORK, orgs: ["org-c"] },
        ],
        entries: list,
        policies,
      };
      // Written whole and renamed, as the operator (and kubelet) do: a reader never sees half a file.
      writeFileSync(join(g.dir, "directory.json.tmp"), JSON.stringify(doc, null, 1));
      renameSync(join(g.dir, "directory.json.tmp"), join(g.dir, "directory.json"));
    },
    writeLeaf(g, leaf) {
      g.leaf = leaf;
      writeFileSync(join(g.dir, "tls.crt"), leaf.certPem);
      writeFileSync(join(g.dir, "tls.key"), leaf.keyPem);
    },
    writeBundle(g, pems) {
      writeFileSync(join(g.dir, "ca.crt"), pems.join(""));
    },
    configA: () => `[proxy]
id = "gw-a"
[logging]
log_level = "info"
[management]
enabled = true
network = "management"
[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0
[network.default.http]
bind_address = "127.0.0.1"
bind_port = 0
[network.inter]
harmony_network = "${NETWORK}"
[network.inter.http]
bind_address = "127.0.0.1"
bind_port = ${a.port}
${netTable(a)}
[pipelines.to_b]
networks = ["default"]
endpoints = ["b_fhir_in"]
backends = ["b_fhir_out"]
[endpoints.b_fhir_in]
service = "fhir"
options = { path_prefix = "/b/fhir" }
[backends.b_fhir_out]
service = "fhir"
options = { target = "${B_FHIR}" }
[pipelines.to_nowhere]
networks = ["default"]
endpoints = ["nowhere_in"]
backends = ["nowhere_out"]
[endpoints.nowhere_in]
service = "http"
options = { path_prefix = "/nowhere" }
[backends.nowhere_out]
service = "http"
options = { target = "harmony://${DOMAIN}/org-b/nope" }
`,
    configB: (fhirBase) => `[proxy]
id = "gw-b"
[logging]
log_level = "info"
[management]
enabled = true
network = "management"
[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0
[network.inter]
harmony_network = "${NETWORK}"
[network.inter.http]
bind_address = "127.0.0.1"
bind_port = ${b.port}
${netTable(b)}
[pipelines.fhir]
networks = ["inter"]
endpoints = ["fhir_in"]
backends = ["fhir_out"]
[endpoints.fhir_in]
service = "fhir"
options = { path_prefix = "/org-b/fhir" }
[backends.fhir_out]
service = "fhir"
options = { base_url = "${fhirBase}" }
`,
  };
  for (const g of [a, b]) {
    files.writeLeaf(g, g.leaf);
    files.writeBundle(g, [ca.certPem]);
    files.writeDirectory(g);
    writeFileSync(join(g.dir, "export.jws"), `eyJhbGciOiJFUzI1NiJ9.${g.org}.c2ln`);
  }
  return files;
}

export function netTable(g: Gw): string {
  return `[harmony_networks.${NETWORK}]
domain = "${DOMAIN}"
org = "${g.org}"
cert_path = "${join(g.dir, "tls.crt")}"
key_path = "${join(g.dir, "tls.key")}"
trust_bundle_path = "${join(g.dir, "ca.crt")}"
directory_path = "${join(g.dir, "directory.json")}"
export_path = "${join(g.dir, "export.jws")}"
`;
}

/**
 * One HTTPS request to a gateway's harmony listener with an optional client certificate. The
 * server is verified against `ca` but not by host name (gateways are named by SPIFFE URI).
 */
export function mtls(
  port: number,
  path: string,
  opts: { ca: string; client?: Leaf; method?: string; body?: string | Buffer; headers?: Record<string, string> },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: opts.method ?? "GET",
        headers: opts.headers,
        ca: opts.ca,
        ...(opts.client ? { cert: opts.client.certPem, key: opts.client.keyPem } : {}),
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          const text = body.toString("utf8");
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body,
            text,
            json: () => JSON.parse(text) as unknown,
          });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

/**
 * The attack rigs' pair (test/hostile/*): B serves FHIR and, on a DIMSE listener of the network,
 * PACS-B from `origin`'s DICOMweb; A has a pipeline `/fake` to org B's `fake` endpoint, which the
 * test points at an impostor in A's directory. Writes both configs, starts B, then A.
 */
export async function startAttackPair(
  net: NetworkFiles,
  opts: { origin: string; bDicom: number; fakeService: "http" | "fhir" },
  stops: (() => unknown)[],
): Promise<{ a: Dataplane; b: Dataplane }> {
  writeFileSync(
    join(net.b.dir, "harmony.toml"),
    net.configB(`${opts.origin}/fhir`) +
      `[network.dimse]
harmony_network = "${NETWORK}"
[network.dimse.tcp_config]
bind_address = "127.0.0.1"
bind_port = ${opts.bDicom}
[pipelines.pacs]
networks = ["dimse"]
endpoints = ["pacs_in"]
backends = ["pacs_out"]
[endpoints.pacs_in]
service = "dicom"
options = { local_aet = "PACS-B" }
[backends.pacs_out]
service = "dicomweb"
options = { base_url = "${opts.origin}/dicom-web" }
`,
  );
  writeFileSync(
    join(net.a.dir, "harmony.toml"),
    net.configA() +
      `[pipelines.to_fake]
networks = ["default"]
endpoints = ["fake_in"]
backends = ["fake_out"]
[endpoints.fake_in]
service = "${opts.fakeService}"
options = { path_prefix = "/fake" }
[backends.fake_out]
service = "${opts.fakeService}"
options = { target = "harmony://${DOMAIN}/org-b/fake" }
`,
  );
  const b = await startDataplane(join(net.b.dir, "harmony.toml"));
  stops.push(() => b.stop());
  const a = await startDataplane(join(net.a.dir, "harmony.toml"));
  stops.push(() => a.stop());
  return { a, b };
}

/**
 * C-ECHO to a gateway's DICOM TLS port through a bridge holding `leaf` (with its chain), trusting
 * `ca` and expecting the server's SPIFFE identity `want` in `domain`: the status (-1: no response),
 * or the failure's message.
 */
export async function echoThroughBridge(
  leaf: Leaf,
  to: { port: number; ca: string; domain: string; want: string },
): Promise<number | string> {
  const bridge = new TlsBridge(
    "127.0.0.1",
    to.port,
    {
      cert: Buffer.from(leaf.certPem),
      key: Buffer.from(leaf.keyPem),
      ca: Buffer.from(to.ca),
      identity: to.want,
      checkServerIdentity: (_h, c) =>
        identityOf(c.subjectaltname, to.domain)?.uri === to.want ? undefined : new Error("wrong server"),
    },
    5000,
    createLogger("error"),
  );
  try {
    return await cEcho({
      host: "127.0.0.1",
      port: await bridge.localPort(),
      calledAet: "PACS-B",
      callingAet: "ATTACKER",
      connectTimeoutMs: 5000,
      associationTimeoutMs: 5000,
    });
  } catch (e) {
    return (e as Error).message;
  } finally {
    await bridge.close();
  }
}
