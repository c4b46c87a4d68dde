/**
 * JSON text for the access log's values, without a JSON.stringify call per field.
 *
 * The access line is a fixed set of fields, so it is assembled by hand; only its string values need
 * care. Most of them (ids, method, canonical path, names, addresses) hold nothing that JSON must
 * escape, so one regex test decides and the value is copied between quotes. A string that does
 * need escaping takes the slow loop below, which produces exactly what JSON.stringify does
 * (ES2019 well-formed output): the short escapes, \u00XX for other control characters, and \uXXXX
 * for a lone surrogate, so a line stays valid UTF-8 whatever a client sent.
 */

// What JSON forbids raw in a string (quote, backslash, U+0000-U+001F), plus any surrogate: a pair
// is copied as is by the slow path, a lone one would not survive UTF-8 encoding.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

const SHORT: Record<number, string> = {
  0x08: "\\b",
  0x09: "\\t",
  0x0a: "\\n",
  0x0c: "\\f",
  0x0d: "\\r",
  0x22: '\\"',
  0x5c: "\\\\",
};

function hex4(code: number): string {
  return "\\u" + code.toString(16).padStart(4, "0");
}

/** `s` as a JSON string literal, quotes included. */
export function jsonString(s: string): string {
  return '"' + jsonStringBody(s) + '"';
}

/**
 * What goes between the quotes of `s`'s JSON string literal: `s` itself when nothing needs
 * escaping (no new string is made), so a line template can hold the quotes.
 */
export function jsonStringBody(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  let out = "";
  let from = 0; // start of the run of characters copied unchanged
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c < 0x20 || c === 0x22 || c === 0x5c) esc = SHORT[c] ?? hex4(c);
    else if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1); // NaN past the end
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++; // a well-formed pair: copied with its run
        continue;
      }
      esc = hex4(c);
    }
    if (esc === undefined) continue;
    out += s.slice(from, i) + esc;
    from = i + 1;
  }
  return out + s.slice(from);
}

/** A number as JSON: non-finite values become null, as JSON.stringify makes them. */
export function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : "null";
}

/** ".001" ... ".999" without trailing zeros, by thousandth ("" for 0). */
const THOUSANDTHS = Array.from({ length: 1000 }, (_, i) =>
  i === 0 ? "" : "." + String(i).padStart(3, "0").replace(/0+$/, ""),
);

/** THOUSANDTHS[i] for 0 ≤ i < 1000: what follows a whole number of milliseconds. */
export function thousandths(i: number): string {
  return THOUSANDTHS[i]!;
}

/**
 * `jsonNumber` for a count of milliseconds rounded to the microsecond (the access log's durations),
 * without V8's general double-to-string conversion, which was most of the line's number work. For
 * n = k / 1000 with a whole k, String(n) is k's decimal digits with the point three places in and
 * trailing zeros dropped (the shortest form that reads back as n: below 2^53 / 1000 the doubles are
 * far denser than 0.001), which is what this builds. Anything else takes `jsonNumber`.
 */
export function jsonMillis(n: number): string {
  const k = Math.round(n * 1000);
  if (k / 1000 !== n || k < 0 || k > 1e15) return jsonNumber(n);
  const whole = Math.floor(k / 1000);
  return String(whole) + THOUSANDTHS[k - whole * 1000]!;
}
