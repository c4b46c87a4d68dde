/** Request ids and W3C trace context. */
import { randomFillSync } from "node:crypto";

const ID_OK = /^[\w.:@\-/+=]{1,128}$/;

/** The client's X-Request-Id when it is sane, otherwise a fresh one. */
export function requestId(incoming: string | string[] | undefined): string {
  return typeof incoming === "string" && ID_OK.test(incoming) ? incoming : uuid4();
}

/**
 * Random bytes from a refilled pool: one getrandom call per 512 ids instead of two per request
 * (it showed up at ~5% of CPU per request in the passthrough profile).
 */
const POOL = Buffer.alloc(8192);
let offset = POOL.length;
/** Where the next `bytes` random bytes start in POOL. */
function take(bytes: number): number {
  if (offset + bytes > POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  const at = offset;
  offset += bytes;
  return at;
}

function randomHex(bytes: number): string {
  const at = take(bytes);
  return POOL.toString("hex", at, at + bytes);
}

const HEX = Buffer.from("0123456789abcdef", "latin1");
/** A UUID's text, written in place: its dashes stay, its 32 digits are written per id. */
const UUID_TEXT = Buffer.from("00000000-0000-4000-8000-000000000000", "latin1");
/** Where each of the 16 bytes' two digits go in UUID_TEXT. */
const UUID_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * A random (version 4) UUID, as crypto.randomUUID makes one: 122 random bits from the CSPRNG,
 * lower-case, with its dashes. Written into one buffer and read out as one string: randomUUID
 * builds it from 20 concatenations (about 490 B per request, bench/README.md).
 */
export function uuid4(): string {
  const at = take(16);
  for (let i = 0; i < 16; i++) {
    let b = POOL[at + i]!;
    if (i === 6)
      b = (b & 0x0f) | 0x40; // version 4
    else if (i === 8) b = (b & 0x3f) | 0x80; // variant 10xx (RFC 9562)
    const to = UUID_AT[i]!;
    UUID_TEXT[to] = HEX[b >> 4]!;
    UUID_TEXT[to + 1] = HEX[b & 15]!;
  }
  return UUID_TEXT.toString("latin1");
}

const TRACEPARENT = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/;
const ZEROS = /^0+$/;

/**
 * The traceparent to send upstream: the caller's trace id with a new span id for this hop, or a
 * new trace when the caller sent none (or an invalid one, as the spec requires).
 */
export function nextTraceparent(incoming: string | string[] | undefined): string {
  if (typeof incoming === "string") {
    const m = TRACEPARENT.exec(incoming.trim().toLowerCase());
    if (m && m[1] !== "ff" && !ZEROS.test(m[2]!) && !ZEROS.test(m[3]!)) return `00-${m[2]}-${randomHex(8)}-${m[4]}`;
  }
  // A new trace: its id and the span's, written into one buffer and read out as one string.
  const at = take(24);
  for (let i = 0; i < 24; i++) {
    const b = POOL[at + i]!;
    const to = i < 16 ? 3 + 2 * i : 4 + 2 * i; // the trace id's 32 digits, "-", the span's 16
    TRACE_TEXT[to] = HEX[b >> 4]!;
    TRACE_TEXT[to + 1] = HEX[b & 15]!;
  }
  return TRACE_TEXT.toString("latin1");
}

const TRACE_TEXT = Buffer.from(`00-${"0".repeat(32)}-${"0".repeat(16)}-01`, "latin1");
