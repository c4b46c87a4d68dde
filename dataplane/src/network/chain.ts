/**
 * Certificate paths for the per-CA trust scope (network/trust.ts): which roots of the trust bundle
 * a leaf chains to, through the intermediates the peer presented. TLS (OpenSSL) has already
 * verified *a* path to *some* CA of the bundle; the scope must come from the root a path ends at,
 * so the path is built again here and every link checked on its own: the signature, CA:true and
 * pathLenConstraint of each issuer, and the validity of each intermediate. An intermediate carries
 * no scope of its own, so it can never widen its root's. Bounded: at most MAX_PRESENTED presented
 * certificates, at most MAX_INTERMEDIATES of them in one path, each used once per path (a loop
 * ends), and each signature checked at most once per (child, issuer) pair.
 */
import type { X509Certificate } from "node:crypto";

export const MAX_INTERMEDIATES = 4;
export const MAX_PRESENTED = 8;

export interface BasicConstraints {
  ca: boolean;
  /** Undefined: no limit. */
  pathLen: number | undefined;
}

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function tlv(b: Buffer, off: number, limit: number): Tlv {
  if (off + 2 > limit) throw new Error("truncated DER");
  const tag = b[off]!;
  let len = b[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 4 || p + n > limit) throw new Error("bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p++]!;
  }
  if (p + len > limit) throw new Error("truncated DER");
  return { tag, start: p, end: p + len };
}

function children(b: Buffer, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let o = t.start; o < t.end;) {
    const c = tlv(b, o, t.end);
    out.push(c);
    o = c.end;
  }
  return out;
}

const BASIC_CONSTRAINTS_OID = Buffer.from([0x55, 0x1d, 0x13]); // 2.5.29.19

/**
 * basicConstraints from the DER (node:crypto exposes `ca` but not pathLenConstraint). A certificate
 * whose extensions do not parse is no CA: a path through it is refused rather than guessed at.
 */
export function basicConstraints(raw: Buffer): BasicConstraints {
  try {
    const cert = tlv(raw, 0, raw.length);
    const tbs = children(raw, cert)[0]!;
    const exts = children(raw, tbs).find((c) => c.tag === 0xa3);
    if (!exts) return { ca: false, pathLen: undefined };
    for (const ext of children(raw, children(raw, exts)[0]!)) {
      const parts = children(raw, ext);
      const oid = parts[0]!;
      if (oid.tag !== 0x06 || !raw.subarray(oid.start, oid.end).equals(BASIC_CONSTRAINTS_OID)) continue;
      const value = parts[parts.length - 1]!;
      const items = children(raw, tlv(raw, value.start, value.end));
      let ca = false;
      let pathLen: number | undefined;
      for (const it of items) {
        if (it.tag === 0x01) ca = raw[it.start] !== 0;
        else if (it.tag === 0x02) {
          // A pathLen too large for 4 bytes is as good as none.
          pathLen = it.end - it.start > 4 ? undefined : raw.subarray(it.start, it.end).readUIntBE(0, it.end - it.start);
        }
      }
      return { ca, pathLen };
    }
    return { ca: false, pathLen: undefined };
  } catch {
    return { ca: false, pathLen: undefined };
  }
}

function within(c: X509Certificate, now: Date): boolean {
  return c.validFromDate <= now && now <= c.validToDate;
}

/**
 * The anchors (of `roots`) that `leaf` chains to through `presented`, or why none: a non-empty
 * list, or a string for the refusal. A root is reached only by a path whose every issuer is a CA
 * (CA:true) whose pathLenConstraint allows the intermediates below it.
 */
export function chainRoots<T extends { cert: X509Certificate }>(
  leaf: X509Certificate,
  presented: readonly X509Certificate[],
  roots: readonly T[],
  now = new Date(),
): T[] | string {
  const pool: X509Certificate[] = [];
  for (const c of presented) {
    if (pool.length >= MAX_PRESENTED) break;
    if (!c.raw.equals(leaf.raw) && !pool.some((p) => p.raw.equals(c.raw))) pool.push(c);
  }
  const bc = new Map<X509Certificate, BasicConstraints>();
  const constraints = (c: X509Certificate) => {
    let v = bc.get(c);
    if (!v) bc.set(c, (v = basicConstraints(c.raw)));
    return v;
  };
  const signed = new Map<X509Certificate, Map<X509Certificate, boolean>>();
  const issued = (child: X509Certificate, parent: X509Certificate) => {
    let row = signed.get(child);
    if (!row) signed.set(child, (row = new Map<X509Certificate, boolean>()));
    let v = row.get(parent);
    if (v === undefined) row.set(parent, (v = child.checkIssued(parent) && safeVerify(child, parent)));
    return v;
  };
  const found = new Set<T>();
  let why: string | undefined;
  // `depth`: intermediates between `cur` and the leaf so far (0 while cur is the leaf).
  const walk = (cur: X509Certificate, depth: number, used: Set<X509Certificate>) => {
    for (const r of roots) {
      if (!issued(cur, r.cert)) continue;
      const c = constraints(r.cert);
      if (!c.ca) why ??= `the bundle certificate that signed it is not a CA (CA:false)`;
      else if (c.pathLen !== undefined && c.pathLen < depth)
        why ??= `its root allows ${c.pathLen} intermediate CA(s) below it, the chain has ${depth}`;
      else found.add(r);
    }
    for (const i of pool) {
      if (used.has(i) || !issued(cur, i)) continue;
      const c = constraints(i);
      if (depth >= MAX_INTERMEDIATES) why ??= `its chain has more than ${MAX_INTERMEDIATES} intermediate CAs`;
      else if (!c.ca) why ??= `it was signed by a certificate that is not a CA (${i.subject.trim() || "no subject"})`;
      else if (c.pathLen !== undefined && c.pathLen < depth)
        why ??= `an intermediate allows ${c.pathLen} intermediate CA(s) below it, the chain has ${depth}`;
      else if (!within(i, now)) why ??= `an intermediate CA of its chain is expired or not yet valid`;
      else {
        used.add(i);
        walk(i, depth + 1, used);
        used.delete(i);
      }
    }
  };
  walk(leaf, 0, new Set());
  if (found.size) return [...found];
  return why ?? "its certificate does not chain to a CA of the trust bundle";
}

function safeVerify(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}
