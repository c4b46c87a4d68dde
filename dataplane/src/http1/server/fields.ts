/**
 * A lane response's status and header fields, and the head they make (node:http's writeHead and
 * _storeHeader, lib/_http_outgoing.js in Node 24): the setHeader family with node's checks, fields
 * set before merged with writeHead's, then Date, Connection and Keep-Alive, Content-Length or
 * chunked, and the decisions a response's fields make (head.ts has the rules per field). The
 * writer (response.ts) sends the head with the first bytes.
 */
import { EventEmitter } from "node:events";
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from "node:http";
import {
  addField,
  badStatusMessage,
  checkName,
  checkValue,
  dateField,
  httpError,
  statusText,
  type HeadState,
  type Seen,
} from "./head.js";

type HeaderValue = number | string | readonly string[];
type OutHeaders = Record<string, [string, HeaderValue]>;

let keepAliveMs = -1;
let keepAliveField = "";

/** `Keep-Alive: timeout=…` for a listener's keep-alive timeout (the same for all its answers). */
function keepAliveLine(ms: number): string {
  if (ms !== keepAliveMs) {
    keepAliveMs = ms;
    keepAliveField = `Keep-Alive: timeout=${Math.floor(ms / 1000)}\r\n`;
  }
  return keepAliveField;
}

export abstract class ResponseFields extends EventEmitter implements HeadState {
  statusCode = 200;
  /** Empty until writeHead picks one (node's is undefined; both mean "the status's own"). */
  statusMessage = "";
  sendDate = true;
  // node:http's per-response state (lib/_http_outgoing.js), by its names where it has them.
  shouldKeepAlive: boolean;
  chunkedEncoding = false;
  last = false;
  contentLength: number | null = null;
  removedConnection = false;
  removedContLen = false;
  removedTE = false;
  defaultKeepAlive = true;
  protected useChunkedEncodingByDefault = true;
  protected hasBody = true;
  /** The head once writeHead built it; `headSent`: it went to the socket. */
  protected head: string | null = null;
  protected headSent = false;
  protected trailer = "";
  private out: OutHeaders | null = null;

  constructor(
    keepAlive: boolean,
    private readonly keepAliveTimeoutMs: number,
  ) {
    super();
    this.shouldKeepAlive = keepAlive;
  }

  /** Sends the head now (a response with an Expect field, as node's). */
  protected abstract flushHead(): void;

  get headersSent(): boolean {
    return this.head !== null;
  }

  setHeader(name: string, value: HeaderValue): this {
    if (this.head !== null)
      throw httpError("ERR_HTTP_HEADERS_SENT", "Cannot set headers after they are sent to the client");
    checkName(name);
    checkValue(name, value);
    (this.out ??= Object.create(null) as OutHeaders)[name.toLowerCase()] = [name, value];
    return this;
  }

  appendHeader(name: string, value: string | readonly string[]): this {
    if (this.head !== null)
      throw httpError("ERR_HTTP_HEADERS_SENT", "Cannot append headers after they are sent to the client");
    checkName(name);
    checkValue(name, value);
    const entry = this.out?.[name.toLowerCase()];
    if (!entry) return this.setHeader(name, value);
    const values = Array.isArray(entry[1]) ? (entry[1] as string[]) : (entry[1] = [entry[1] as string]);
    if (typeof value === "string") values.push(value);
    else for (const v of value) values.push(v);
    return this;
  }

  getHeader(name: string): OutgoingHttpHeader | undefined {
    if (typeof name !== "string") throw httpError("ERR_INVALID_ARG_TYPE", 'The "name" argument must be of type string');
    return this.out?.[name.toLowerCase()]?.[1] as OutgoingHttpHeader | undefined;
  }

  getHeaderNames(): string[] {
    return this.out ? Object.keys(this.out) : [];
  }

  getHeaders(): OutgoingHttpHeaders {
    const all = Object.create(null) as OutgoingHttpHeaders;
    for (const key in this.out) all[key] = this.out[key]![1] as OutgoingHttpHeader;
    return all;
  }

  hasHeader(name: string): boolean {
    if (typeof name !== "string") throw httpError("ERR_INVALID_ARG_TYPE", 'The "name" argument must be of type string');
    return this.out !== null && !!this.out[name.toLowerCase()];
  }

  removeHeader(name: string): void {
    if (typeof name !== "string") throw httpError("ERR_INVALID_ARG_TYPE", 'The "name" argument must be of type string');
    if (this.head !== null)
      throw httpError("ERR_HTTP_HEADERS_SENT", "Cannot remove headers after they are sent to the client");
    const key = name.toLowerCase();
    if (key === "connection") this.removedConnection = true;
    else if (key === "content-length") this.removedContLen = true;
    else if (key === "transfer-encoding") this.removedTE = true;
    else if (key === "date") this.sendDate = false;
    if (this.out !== null) delete this.out[key];
  }

  /** Trailers after a chunked body (ignored otherwise, as node's). */
  addTrailers(headers: OutgoingHttpHeaders | readonly [string, string][]): void {
    let trailer = "";
    const pairs: [string, unknown][] = Array.isArray(headers)
      ? (headers as [string, string][])
      : Object.entries(headers as OutgoingHttpHeaders);
    for (const [field, value] of pairs) {
      checkName(field);
      if (Array.isArray(value) && value.length > 1) {
        for (const v of value) {
          checkValue(field, v);
          trailer += field + ": " + String(v) + "\r\n";
        }
      } else {
        const v = Array.isArray(value) ? value.join("; ") : value;
        checkValue(field, v);
        trailer += field + ": " + String(v) + "\r\n";
      }
    }
    this.trailer = trailer;
  }

  writeHead(statusCode: number, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this;
  writeHead(statusCode: number, reason?: string, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this;
  writeHead(
    statusCode: number,
    reason?: string | OutgoingHttpHeaders | OutgoingHttpHeader[],
    obj?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this {
    if (this.head !== null)
      throw httpError("ERR_HTTP_HEADERS_SENT", "Cannot write headers after they are sent to the client");
    const original = statusCode;
    statusCode |= 0;
    if (statusCode < 100 || statusCode > 999)
      throw httpError("ERR_HTTP_INVALID_STATUS_CODE", `Invalid status code: ${String(original)}`);
    if (typeof reason === "string") this.statusMessage = reason;
    else {
      this.statusMessage ||= statusText(statusCode);
      obj ??= reason;
    }
    this.statusCode = statusCode;
    let headers: OutgoingHttpHeaders | OutgoingHttpHeader[] | OutHeaders | undefined = obj;
    if (this.out !== null) {
      // Fields set before, then these (replacing a name set before, keeping its place).
      if (Array.isArray(obj)) {
        if (obj.length % 2 !== 0) throw httpError("ERR_INVALID_ARG_VALUE", "The argument 'headers' is invalid");
        for (let n = 0; n < obj.length; n += 2) this.removeHeader(obj[n] as string);
        for (let n = 0; n < obj.length; n += 2) if (obj[n]) this.appendHeader(obj[n] as string, obj[n + 1] as string);
      } else if (obj) {
        const keys = Object.keys(obj);
        for (let i = 0; i < keys.length; i++) if (keys[i]) this.setHeader(keys[i]!, obj[keys[i]!]!);
      }
      headers = this.out;
    }
    if (badStatusMessage(this.statusMessage)) throw httpError("ERR_INVALID_CHAR", "Invalid character in statusMessage");
    if (statusCode === 204 || statusCode === 304 || (statusCode >= 100 && statusCode <= 199)) this.hasBody = false;
    this.storeHead(`HTTP/1.1 ${statusCode} ${this.statusMessage}\r\n`, headers, headers === this.out);
    return this;
  }

  /** node's _storeHeader: the head for these fields, and what they decide. */
  private storeHead(
    statusLine: string,
    headers: OutgoingHttpHeaders | OutgoingHttpHeader[] | OutHeaders | undefined | null,
    own: boolean,
  ): void {
    const seen: Seen = {
      connection: false,
      contLen: false,
      te: false,
      date: false,
      expect: false,
      trailer: false,
      head: statusLine,
    };
    if (headers) {
      if (own) {
        const o = headers as OutHeaders;
        for (const key in o) addField(this, seen, o[key]![0], o[key]![1], false);
      } else if (Array.isArray(headers)) {
        if (headers.length && Array.isArray(headers[0])) {
          for (const entry of headers as unknown as [string, unknown][]) addField(this, seen, entry[0], entry[1], true);
        } else {
          if (headers.length % 2 !== 0) throw httpError("ERR_INVALID_ARG_VALUE", "The argument 'headers' is invalid");
          for (let n = 0; n < headers.length; n += 2) addField(this, seen, headers[n] as string, headers[n + 1], true);
        }
      } else {
        const o = headers as OutgoingHttpHeaders;
        for (const key in o) if (Object.hasOwn(o, key)) addField(this, seen, key, o[key], true);
      }
    }
    let head = seen.head;
    if (this.sendDate && !seen.date) head += dateField();
    // A 204/304 "chunked" is sent without chunks, and the connection closed after it (node's rule).
    if (this.chunkedEncoding && (this.statusCode === 204 || this.statusCode === 304)) {
      this.chunkedEncoding = false;
      this.shouldKeepAlive = false;
    }
    if (this.removedConnection) this.last = !this.shouldKeepAlive;
    else if (!seen.connection) {
      if (this.shouldKeepAlive && (seen.contLen || this.useChunkedEncodingByDefault)) {
        head += "Connection: keep-alive\r\n";
        if (this.keepAliveTimeoutMs && this.defaultKeepAlive) head += keepAliveLine(this.keepAliveTimeoutMs);
      } else {
        this.last = true;
        head += "Connection: close\r\n";
      }
    }
    if (!seen.contLen && !seen.te) {
      if (!this.hasBody) this.chunkedEncoding = false;
      else if (!this.useChunkedEncodingByDefault) this.last = true;
      else if (!seen.trailer && !this.removedContLen && typeof this.contentLength === "number") {
        head += "Content-Length: " + this.contentLength + "\r\n";
      } else if (!this.removedTE) {
        head += "Transfer-Encoding: chunked\r\n";
        this.chunkedEncoding = true;
      } else this.last = true;
    }
    if (this.chunkedEncoding !== true && seen.trailer)
      throw httpError("ERR_HTTP_TRAILER_INVALID", "Trailers are invalid with this transfer encoding");
    this.head = head + "\r\n";
    this.headSent = false;
    if (seen.expect) this.flushHead();
  }
}
