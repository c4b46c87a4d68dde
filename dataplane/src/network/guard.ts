/**
 * The gate of a `harmony_network` listener: every request must come from a verified peer gateway
 * of the network (its SPIFFE URI SAN, from a certificate that verified against the trust bundle,
 * of an org the directory knows) and be allowed by the directory's policies for the endpoint it
 * addresses. The one exception is the signed export, served to anyone: its JWS signature, not the
 * connection, is what a peer cluster trusts.
 */
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Logger } from "winston";
import { problemType, writeProblem, type HarmonyProblem } from "../pipeline/errors.js";
import { closeAfterResponse } from "../runtime/connection-close.js";
import { writeOperationOutcome } from "../protocols/fhir-outcome.js";
import type { HarmonyNetwork } from "./config.js";
import type { Directory, DirectoryEntry } from "./directory.js";
import { orgKey, peerIdentity, peerScopeRefusal, type Identity } from "./identity.js";
import { describeOperation, httpOperation } from "./operations.js";
import { evaluate } from "./policy.js";

/** This gateway's HTTP-carried endpoints, longest path_prefix first, per directory (built once). */
const localEndpoints = new WeakMap<Directory, DirectoryEntry[]>();

function endpointsOf(net: HarmonyNetwork): DirectoryEntry[] {
  let list = localEndpoints.get(net.directory);
  if (!list) {
    list = net.directory.doc.entries
      .filter((e) => e.org === net.org && e.protocol !== "dicom" && e.path_prefix !== undefined)
      .sort((a, b) => b.path_prefix!.length - a.path_prefix!.length);
    localEndpoints.set(net.directory, list);
  }
  return list;
}

function endpointFor(net: HarmonyNetwork, path: string): DirectoryEntry | undefined {
  for (const e of endpointsOf(net)) {
    const p = e.path_prefix!.replace(/\/+$/, "");
    if (path === p || path.startsWith(p + "/") || p === "") return e;
  }
  return undefined;
}

/** Whether the directory knows this identity: its gateway serves entries, or its org is a member. */
export function knownPeer(d: Directory, peer: Identity): boolean {
  return d.byIdentity.has(peer.uri) || d.orgs.has(orgKey(peer, d.doc.domain));
}

export const exportPath = (network: string) => `/.well-known/harmony/${network}/export.jws`;

/**
 * Returns true when the request may go on to routing; otherwise the response is written here
 * (a problem, an OperationOutcome for FHIR endpoints, or the export document).
 */
export function guardRequest(
  net: HarmonyNetwork,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  id: string,
  logger: Logger,
): boolean {
  const method = req.method ?? "GET";
  if (path === exportPath(net.name) && (method === "GET" || method === "HEAD")) {
    void serveExport(net, method, res, id);
    return false;
  }
  const socket = req.socket as TLSSocket;
  const peer = peerIdentity(socket, net.domains);
  const refuse = (problem: HarmonyProblem, entry?: DirectoryEntry) => {
    // The TLS verdict belongs to the connection, fixed at its handshake: it never changes on this
    // connection, even once the trust bundle holds the peer's CA (a peer cluster's import lands
    // seconds after that cluster starts calling). A client that kept the connection (any upstream
    // pool, calling more often than the keep-alive timeout) would be refused on it forever, so an
    // identity refusal ends it and the next request gets a handshake judged by the bundle of then.
    if (problem.type === problemType("network-identity")) closeAfterResponse(req, res);
    if (entry?.protocol === "fhir") writeOperationOutcome(res, problem, id);
    else writeProblem(res, problem, id);
    return false;
  };
  if (!peer) {
    const why = !socket.getPeerCertificate?.()?.raw
      ? "a client certificate is required"
      : !socket.authorized
        ? `the client certificate is not trusted (${String(socket.authorizationError)})`
        : `the client certificate names no identity spiffe://${net.domain}/org/<org>/gateway/<name>`;
    logger.warn("network peer refused", {
      network: net.name,
      request_id: id,
      client: socket.remoteAddress,
      reason: why,
    });
    return refuse({ status: 401, title: "Unauthorized", type: problemType("network-identity"), detail: why });
  }
  // A CA of the bundle may speak only for its own orgs: a peer cluster's CA naming one of ours (or
  // a third peer's) is refused as an unknown identity is, with the CA's scope in the log line.
  const outOfScope = peerScopeRefusal(socket, net.trust, peer, net.domain);
  if (outOfScope) {
    const detail = `${peer.uri} is refused: ${outOfScope}`;
    logger.warn("network peer refused", { network: net.name, request_id: id, peer: peer.uri, reason: outOfScope });
    return refuse({ status: 403, title: "Forbidden", type: problemType("network-identity"), detail });
  }
  if (!knownPeer(net.directory, peer)) {
    const detail = `${peer.uri} is not a member of network ${net.name}`;
    logger.warn("network peer refused", { network: net.name, request_id: id, peer: peer.uri, reason: detail });
    return refuse({ status: 403, title: "Forbidden", type: problemType("network-identity"), detail });
  }
  const entry = endpointFor(net, path);
  if (!entry)
    return refuse({
      status: 404,
      title: "Not Found",
      type: problemType("network-endpoint"),
      detail: `no endpoint of network ${net.name} is served at ${path}`,
    });
  const prefix = entry.path_prefix!.replace(/\/+$/, "");
  const op = httpOperation(entry.protocol, method, path.slice(prefix.length) || "/");
  const decision = evaluate(net.policy, net.directory, peer, entry.uri, entry.org, op);
  if (decision.allow) return true;
  const detail = `${peer.uri} may not ${describeOperation(op)} on ${entry.uri}: denied by rule "${decision.rule}"`;
  logger.warn("network policy denied", {
    network: net.name,
    request_id: id,
    peer: peer.uri,
    destination: entry.uri,
    operation: describeOperation(op),
    rule: decision.rule,
  });
  return refuse(
    {
      status: 403,
      title: "Forbidden",
      type: problemType("network-policy"),
      detail,
      headers: { "x-harmony-policy-rule": decision.rule },
    },
    entry,
  );
}

async function serveExport(net: HarmonyNetwork, method: string, res: ServerResponse, id: string): Promise<void> {
  let body: Buffer;
  try {
    if (!net.exportPath) throw new Error("no export_path");
    body = await readFile(net.exportPath);
  } catch {
    writeProblem(res, { status: 404, title: "Not Found", detail: `network ${net.name} publishes no export` }, id);
    return;
  }
  res.writeHead(200, {
    "content-type": "application/jose",
    "content-length": body.length,
    "cache-control": "no-store",
    "x-request-id": id,
  });
  res.end(method === "HEAD" ? undefined : body);
}
