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

/**
 * Called with the head's fields so far when a head has more than 32 of them (then again for the
 * next 32...); `url` is the request target on the first call, "" after. kOnHeadersComplete then
 * gets `headers` and `url` undefined: they are the concatenation of these calls.
 */
export type OnHeaders = (headers: string[], url: string) => void;

interface Binding {
  HTTPParser: {
    new (): LlhttpParser;
    REQUEST: number;
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

/**
 * Request methods by the number kOnHeadersComplete gives (REQUEST mode); node:http's own table.
 * Empty where the binding is not there.
 */
export const METHODS: readonly string[] = (() => {
  try {
    const m = (createRequire(import.meta.url)("_http_common") as { methods?: string[] }).methods;
    return Array.isArray(m) ? m : [];
  } catch {
    return [];
  }
})();

/**
 * kOnHeadersComplete's return value that ends `execute` right after the head (llhttp treats the
 * message as an upgrade with no body): `execute` returns the bytes up to the head's end, and the
 * parser takes the next message from there on the next call, but without its head size limit:
 * re-initialize it before the next head.
 */
export const STOP_AFTER_HEAD = 2;

const loaded = llhttpBinding();
/** Only used by connections of a pool the config check allowed, i.e. when the binding is there. */
export const HTTPParser = loaded as Binding["HTTPParser"];
