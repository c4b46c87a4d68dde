/**
 * Node's own llhttp binding: the HTTPParser that node:http itself parses with (strict by default:
 * no lenient flags). It is not a documented API, so its shape is written down here once, and
 * loaded with require so that a bundler or the type checker never has to know about it.
 */
import { createRequire } from "node:module";

/** Called once the head is parsed; returns 1 to skip the body (HEAD, 1xx, 204, 304). */
export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number,
  statusMessage: string,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number;

export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  /** Bytes parsed, or the parse error (its `code` is HPE_...). */
  execute(buf: Buffer): number | (Error & { code?: string; reason?: string });
  /** Signals EOF: completes a close-delimited body. */
  finish(): undefined | Error;
  close(): void;
  [callback: number]: unknown;
}

interface Binding {
  HTTPParser: {
    new (): LlhttpParser;
    RESPONSE: number;
    /** Header fields flushed early: a head with more than 32 fields arrives in parts. */
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
  };
}

/**
 * The binding, or undefined on a Node that no longer exposes it: checked when a config asks for
 * the engine (a config problem there), so the data plane itself never fails to start over it.
 */
export function llhttpBinding(): Binding["HTTPParser"] | undefined {
  try {
    const parser = (createRequire(import.meta.url)("_http_common") as Partial<Binding>).HTTPParser;
    return typeof parser === "function" && typeof parser.kOnHeadersComplete === "number" ? parser : undefined;
  } catch {
    return undefined;
  }
}

const loaded = llhttpBinding();
/** Only used by connections of a pool the config check allowed, i.e. when the binding is there. */
export const HTTPParser = loaded as Binding["HTTPParser"];
