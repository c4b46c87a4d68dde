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

/**
 * Fresh ids are made `BATCH` at a time: their text written into one buffer from the pooled random
 * bytes, read out as one string, and handed out as slices of it (V8 makes a slice a view, not a
 * copy). One Buffer-to-string call per batch instead of one per id (~40 ns of ~135 per id).
 * The bytes are the CSPRNG's as before; a batch's ids are as unpredictable as the pool they come from.
 */
const BATCH = 64;

/** Writes the two hex digits of each of `n` pool bytes from `at` into `text` at `to[i] + base`. */
function hexInto(text: Buffer, base: number, at: number, to: readonly number[]): void {
  for (let i = 0; i < to.length; i++) {
    const b = POOL[at + i]!;
    const o = base + to[i]!;
    text[o] = HEX[b >> 4]!;
    text[o + 1] = HEX[b & 15]!;
  }
}

/** A UUID's text: its dashes stay, its 32 digits are written per id. */
const UUID_LEN = 36;
/** Where each of the 16 bytes' two digits go in a UUID's text. */
const UUID_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const UUID_TEXT = Buffer.from("00000000-0000-4000-8000-000000000000".repeat(BATCH), "latin1");
let uuids = "";
let nextUuid = BATCH;

/**
 * A random (version 4) UUID, as crypto.randomUUID makes one: 122 random bits from the CSPRNG,
 * lower-case, with its dashes. randomUUID builds it from 20 concatenations (about 490 B per
 * request, bench/README.md); here it is a slice of a batch's text.
 */
export function uuid4(): string {
  if (nextUuid === BATCH) {
    for (let k = 0; k < BATCH; k++) {
      const at = take(16);
      POOL[at + 6] = (POOL[at + 6]! & 0x0f) | 0x40; // version 4
      POOL[at + 8] = (POOL[at + 8]! & 0x3f) | 0x80; // variant 10xx (RFC 9562)
      hexInto(UUID_TEXT, k * UUID_LEN, at, UUID_AT);
    }
    uuids = UUID_TEXT.toString("latin1");
    nextUuid = 0;
  }
  const from = nextUuid++ * UUID_LEN;
  return uuids.slice(from, from + UUID_LEN);
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
  if (nextTrace === BATCH) {
    for (let k = 0; k < BATCH; k++) hexInto(TRACE_TEXT, k * TRACE_LEN, take(24), TRACE_AT);
    traces = TRACE_TEXT.toString("latin1");
    nextTrace = 0;
  }
  const from = nextTrace++ * TRACE_LEN;
  return traces.slice(from, from + TRACE_LEN);
}

/** A new trace's traceparent: "00-", the trace id's 32 digits, "-", the span's 16, "-01". */
const TRACE_LEN = 55;
/** Where each of the 24 random bytes' two digits go in a traceparent. */
const TRACE_AT = Array.from({ length: 24 }, (_, i) => (i < 16 ? 3 + 2 * i : 4 + 2 * i));
const TRACE_TEXT = Buffer.from(`00-${"0".repeat(32)}-${"0".repeat(16)}-01`.repeat(BATCH), "latin1");
let traces = "";
let nextTrace = BATCH;
