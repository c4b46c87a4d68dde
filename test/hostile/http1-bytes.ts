/**
 * Byte-building helpers for the HTTP/1.1 server-lane corpus: requests as latin1 strings (so that
 * any byte can be spelled), the rig's Host, the request pipelined behind most attacks, and heads of
 * an exact size.
 */
export const CRLF = "\r\n";
export const b = (s: string) => Buffer.from(s, "latin1");
/** A UTF-8 string as the latin1 bytes that carry it (so the corpus builds everything as latin1). */
export const utf8 = (s: string) => Buffer.from(s, "utf8").toString("latin1");

export function request(method: string, target: string, lines: string[], version = "HTTP/1.1", body = ""): string {
  return `${method} ${target} ${version}${CRLF}${lines.map((l) => l + CRLF).join("")}${CRLF}${body}`;
}

export const HOST = "Host: dp.test";

/** Pipelined behind most attacks: whatever came before, this one must be answered (or not) alike. */
export const NEXT = request("GET", "/lane/k-chunked", [HOST]);

/**
 * A head whose header lines (after the request line, before the empty line) are exactly `size`
 * bytes: what node:http's 16 KiB limit counts (measured: 16,384 such bytes pass, 16,385 get 431).
 */
export function sizedHead(size: number): string {
  const start = `${HOST}${CRLF}X-Pad: `;
  return `GET /lane/a HTTP/1.1${CRLF}${start}${"p".repeat(size - start.length - CRLF.length)}${CRLF}${CRLF}`;
}
