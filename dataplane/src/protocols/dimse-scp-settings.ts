/**
 * What a DIMSE listener's SCP reads when an association arrives: the endpoint's settings and the
 * pipeline to run. A module of its own so that the listener (dimse-listener.ts) and the SCP
 * (dimse-scp.ts) share the contract without importing each other both ways.
 */
import type { Logger } from "winston";
import type { InternalRun } from "../plugins/types.js";
import type { DimseGate } from "../network/dimse-gate.js";

export interface MoveDestination {
  host: string;
  port: number;
  /** AE title called on the sub-association. */
  aet: string;
}

export interface ScpSettings {
  aet: string;
  /** Calling AE titles allowed to associate; empty = any. */
  allowedAets: string[];
  /** Reject associations addressed to another AE title. */
  checkCalledAet: boolean;
  /** C-MOVE destinations: Move Destination AE title → host, port and the AE title called there. */
  peers: Record<string, MoveDestination>;
  maxPduLength: number;
  /** "upstream": a C-ECHO is passed on (OPTIONS through the pipeline), so it checks the whole path. */
  echo: "local" | "upstream";
  /** DIMSE services offered; a disabled one's SOP classes are rejected at association. */
  services: Record<"echo" | "find" | "get" | "move" | "store", boolean>;
  /** Where received C-STOREs are also written (scp-storage.ts); undefined: nowhere. */
  storageDir: string | undefined;
  /** No PDU either way for this long on an association: A-ABORT. */
  associationTimeoutMs: number;
  /** ARTIM (PS3.8 §9.1.5): connect → association request, and our close → the peer's. */
  artimTimeoutMs: number;
  /** An association's whole life; 0: no limit. */
  associationMaxMs: number;
  /** Connections at once on this listener, and from one peer address; 0: no cap. */
  maxAssociations: number;
  maxAssociationsPerPeer: number;
  /** Largest data set one C-STORE may carry. */
  maxInstanceBytes: number;
  connectTimeoutMs: number;
  storeBatchBytes: number;
  logger: Logger;
  /** On a harmony_network listener: peer identity and network policy (network/dimse-gate.ts). */
  network?: DimseGate;
}

/** TLS material of a listener serving DICOM over TLS (a harmony_network identity and bundle). */
export interface DimseTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** The listener as its SCPs see it: both are re-pointed by each config generation. */
export interface ScpHost {
  readonly settings: ScpSettings | undefined;
  readonly run: InternalRun | undefined;
}
