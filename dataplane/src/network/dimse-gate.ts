/**
 * Network identity and policy for DIMSE: a `dicom` endpoint on a `harmony_network` listener takes
 * DICOM over TLS only from verified peer gateways of the network (refused at connection time
 * otherwise), and every DIMSE command on an association is checked against the directory's
 * policies for the endpoint whose ae_title is the endpoint's own AE title.
 */
import type { TLSSocket } from "node:tls";
import type { Logger } from "winston";
import type { HarmonyNetwork } from "./config.js";
import type { DirectoryEntry } from "./directory.js";
import { knownPeer } from "./guard.js";
import { peerIdentity, peerScopeRefusal, type Identity } from "./identity.js";
import type { DicomCommand } from "./operations.js";
import { evaluate } from "./policy.js";

export interface DimseGate {
  net: HarmonyNetwork;
  /** Our AE title: the directory entry of this org with that ae_title is the destination. */
  aet: string;
}

/** The verified peer of a TLS association, or undefined (logged) when it must be refused. */
export function admitPeer(gate: DimseGate, socket: TLSSocket, logger: Logger): Identity | undefined {
  const peer = peerIdentity(socket, gate.net.domains);
  // As on HTTP (guard.ts): the issuing CA must be one that may vouch for the peer's org.
  const outOfScope = peer && peerScopeRefusal(socket, gate.net.trust, peer, gate.net.domain);
  if (peer && !outOfScope && knownPeer(gate.net.directory, peer)) return peer;
  logger.warn("network peer refused", {
    network: gate.net.name,
    protocol: "dicom",
    client: socket.remoteAddress,
    peer: peer?.uri,
    reason: !peer
      ? "the client certificate names no identity of the network"
      : (outOfScope ?? `${peer.uri} is not a member of network ${gate.net.name}`),
  });
  return undefined;
}

function destination(gate: DimseGate): DirectoryEntry | undefined {
  return gate.net.directory.doc.entries.find(
    (e) => e.protocol === "dicom" && e.org === gate.net.org && e.ae_title === gate.aet,
  );
}

/**
 * Undefined when `peer` may run `command`; otherwise the Error Comment of the refusal (DIMSE
 * status 0x0124, Refused: Not Authorized), which names the rule, as the audit line does.
 */
export function refusal(
  gate: DimseGate,
  peer: Identity,
  command: DicomCommand,
  calling: string,
  logger: Logger,
): string | undefined {
  const entry = destination(gate);
  // An AE title the directory does not publish is no endpoint of the network: nothing may reach it.
  const decision = entry
    ? evaluate(gate.net.policy, gate.net.directory, peer, entry.uri, entry.org, { protocol: "dicom", command })
    : { allow: false, rule: "no-endpoint" };
  if (decision.allow) return undefined;
  const where = entry?.uri ?? `AE ${gate.aet}`;
  logger.warn("network policy denied", {
    network: gate.net.name,
    peer: peer.uri,
    destination: where,
    operation: command,
    calling,
    rule: decision.rule,
  });
  // The Error Comment is at most 64 characters (LO): the rule name first, so it survives the cut.
  return `rule ${decision.rule}: ${command} denied`.slice(0, 64);
}
