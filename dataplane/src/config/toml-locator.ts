/**
 * Maps TOML key paths to where they were written, so every config problem can name a line.
 *
 * @iarna/toml gives values but no positions. This scanner walks the text once and records the
 * position of each table header and each key (including dotted keys and keys inside inline
 * tables). It is not a parser: the file has already been parsed successfully when it runs, so
 * it only needs to follow the grammar far enough to skip strings, arrays and comments.
 */
export interface Position {
  line: number; // 1-based
  column: number; // 1-based
}

export type KeyPositions = Map<string, Position>;

/** Joins a key path the same way everywhere: `a.b."c.d"` style is not needed for lookups. */
export const joinPath = (parts: readonly (string | number)[]): string => parts.join("\u0000");

export function locateKeys(text: string): KeyPositions {
  const out: KeyPositions = new Map();
  const s = new Scanner(text);
  let table: string[] = [];
  const arrayCounts = new Map<string, number>();

  while (!s.eof()) {
    s.skipWsAndNewlines();
    if (s.eof()) break;
    const ch = s.peek();
    if (ch === "#") {
      s.skipLine();
      continue;
    }
    if (ch === "[") {
      const pos = s.pos();
      const isArray = s.peek(1) === "[";
      s.advance(isArray ? 2 : 1);
      const keys = s.readKeyPath();
      s.advance(isArray ? 2 : 1);
      if (isArray) {
        const k = joinPath(keys);
        const idx = arrayCounts.get(k) ?? 0;
        arrayCounts.set(k, idx + 1);
        table = [...keys, String(idx)];
      } else {
        table = keys;
      }
      record(out, table, pos);
      s.skipLine();
      continue;
    }
    const pos = s.pos();
    const keys = s.readKeyPath();
    const full = [...table, ...keys];
    record(out, full, pos);
    s.skipInlineWs();
    if (s.peek() === "=") s.advance(1);
    s.skipInlineWs();
    s.readValue(full, out);
    s.skipLine();
  }
  return out;
}

function record(out: KeyPositions, path: string[], pos: Position): void {
  // Intermediate tables created implicitly by dotted keys point at the first key that made them.
  for (let i = 1; i <= path.length; i++) {
    const k = joinPath(path.slice(0, i));
    if (!out.has(k)) out.set(k, pos);
  }
}

class Scanner {
  private i = 0;
  private line = 1;
  private col = 1;
  constructor(private readonly t: string) {}

  eof(): boolean {
    return this.i >= this.t.length;
  }
  peek(o = 0): string {
    return this.t[this.i + o] ?? "";
  }
  pos(): Position {
    return { line: this.line, column: this.col };
  }
  advance(n: number): void {
    for (let k = 0; k < n && this.i < this.t.length; k++) {
      if (this.t[this.i] === "\n") {
        this.line++;
        this.col = 1;
      } else {
        this.col++;
      }
      this.i++;
    }
  }
  skipInlineWs(): void {
    while (this.peek() === " " || this.peek() === "\t") this.advance(1);
  }
  skipWsAndNewlines(): void {
    while (/[ \t\r\n]/.test(this.peek()) && !this.eof()) this.advance(1);
  }
  skipLine(): void {
    while (!this.eof() && this.peek() !== "\n") this.advance(1);
  }
  /** Skips whitespace, newlines and comments (inside arrays and inline tables). */
  skipFiller(): void {
    for (;;) {
      this.skipWsAndNewlines();
      if (this.peek() === "#") this.skipLine();
      else return;
    }
  }

  readKeyPath(): string[] {
    const keys: string[] = [];
    for (;;) {
      this.skipInlineWs();
      keys.push(this.readKey());
      this.skipInlineWs();
      if (this.peek() === ".") {
        this.advance(1);
        continue;
      }
      return keys;
    }
  }

  private readKey(): string {
    const q = this.peek();
    if (q === '"' || q === "'") return this.readString();
    let k = "";
    while (/[A-Za-z0-9_-]/.test(this.peek()) && !this.eof()) {
      k += this.peek();
      this.advance(1);
    }
    return k;
  }

  /** Reads a basic or literal string (single or multi-line) and returns its raw content. */
  readString(): string {
    const q = this.peek();
    const multi = this.peek(1) === q && this.peek(2) === q;
    const delim = multi ? q.repeat(3) : q;
    this.advance(delim.length);
    let v = "";
    while (!this.eof()) {
      if (q === '"' && this.peek() === "\\") {
        v += this.peek() + this.peek(1);
        this.advance(2);
        continue;
      }
      if (this.t.startsWith(delim, this.i)) {
        this.advance(delim.length);
        // A multi-line string may end with up to two extra quotes that belong to the content.
        while (multi && this.peek() === q) this.advance(1);
        return v;
      }
      v += this.peek();
      this.advance(1);
    }
    return v;
  }

  readValue(path: string[], out: KeyPositions): void {
    const c = this.peek();
    if (c === '"' || c === "'") {
      this.readString();
      return;
    }
    if (c === "[") {
      this.advance(1);
      let idx = 0;
      for (;;) {
        this.skipFiller();
        if (this.peek() === "]" || this.eof()) {
          this.advance(1);
          return;
        }
        const p = [...path, String(idx)];
        record(out, p, this.pos());
        this.readValue(p, out);
        idx++;
        this.skipFiller();
        if (this.peek() === ",") this.advance(1);
      }
    }
    if (c === "{") {
      this.advance(1);
      for (;;) {
        this.skipFiller();
        if (this.peek() === "}" || this.eof()) {
          this.advance(1);
          return;
        }
        const pos = this.pos();
        const keys = this.readKeyPath();
        const full = [...path, ...keys];
        record(out, full, pos);
        this.skipInlineWs();
        if (this.peek() === "=") this.advance(1);
        this.skipInlineWs();
        this.readValue(full, out);
        this.skipFiller();
        if (this.peek() === ",") this.advance(1);
      }
    }
    // Scalars: numbers, booleans, dates. Stop at anything that ends a value.
    while (!this.eof() && !/[,\]}\n#]/.test(this.peek())) this.advance(1);
  }
}
