/**
 * PduFramer on its own: however a byte stream of PDUs is cut into chunks, the same PDUs come out;
 * a header's type and length are judged before its body is kept. (The framer over real sockets,
 * against the running gateway, is in test/hostile/dimse.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PduFramer, type Violation } from "../src/protocols/pdu-framer.js";

function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

function frame(chunks: Buffer[], limit: (t: number) => number | undefined = () => 1 << 20) {
  const out: Buffer[] = [];
  const violations: Violation[] = [];
  const f = new PduFramer(
    limit,
    (p) => out.push(p),
    (v) => violations.push(v),
  );
  for (const c of chunks) f.push(c);
  return { out, violations, partial: f.partial };
}

const stream = Buffer.concat([
  pdu(0x01, Buffer.from("association request")),
  pdu(0x04, Buffer.alloc(5000, 7)),
  pdu(0x05, Buffer.alloc(4)),
  pdu(0x04, Buffer.alloc(0)),
]);

test("the same PDUs come out whatever the chunking: whole, one byte at a time, odd sizes", () => {
  const whole = frame([stream]).out;
  assert.equal(whole.length, 4);
  assert.deepEqual(Buffer.concat(whole), stream);
  const bytes = frame([...stream].map((b) => Buffer.from([b])));
  assert.deepEqual(bytes.out, whole);
  assert.equal(bytes.partial, false);
  for (const size of [2, 5, 6, 7, 999, 4096]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
    assert.deepEqual(frame(chunks).out, whole, `chunks of ${size}`);
  }
});

test("a half-received PDU is reported partial and not delivered", () => {
  const r = frame([stream.subarray(0, stream.length - 3)]);
  assert.equal(r.out.length, 3);
  assert.equal(r.partial, true);
});

test("a length over the cap is refused on the header, before any body", () => {
  const header = pdu(0x04, Buffer.alloc(0));
  header.writeUInt32BE(0x7fffffff, 2);
  const r = frame([header], (t) => (t === 0x04 ? 16384 : undefined));
  assert.deepEqual(r.violations, [{ kind: "too-long", type: 4, length: 0x7fffffff, limit: 16384 }]);
  assert.equal(r.out.length, 0);
});

test("an unknown type is refused on its first byte; a type not allowed now likewise", () => {
  assert.deepEqual(frame([Buffer.from("G")]).violations, [{ kind: "unknown-type", type: 0x47 }]);
  const r = frame([pdu(0x04, Buffer.alloc(4))], (t) => (t === 0x01 ? 1024 : undefined));
  assert.deepEqual(r.violations, [{ kind: "unexpected-type", type: 4 }]);
});

test("after a violation nothing more is read", () => {
  const r = frame([Buffer.from([0x09]), pdu(0x01, Buffer.alloc(4))]);
  assert.equal(r.violations.length, 1);
  assert.equal(r.out.length, 0);
});
