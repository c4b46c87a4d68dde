/**
 * Where a key of the rendered TOML came from in the resources the user wrote. The renderer records
 * an entry for every table and option it writes; a data-plane problem at
 * `middleware."clinic.p.middleware.auth".options.audiance` then reads
 * `spec.middleware[0].options.audiance` in admission responses and status conditions alike.
 */
import type { TSchema } from "@sinclair/typebox";
import { displayPath, type Problem } from "@harmony/dataplane";
import { closest, keysAt } from "./suggest.js";

export interface SpecPathEntry {
  /** Spec path this TOML key was rendered from, e.g. `spec.middleware[0].options`. */
  spec: string;
  /** The plugin's option schema, on `...options` entries: for "did you mean". */
  schema?: TSchema;
  /** On an option a `secretOptions` entry became (`<option>_file`): the option name as written. */
  secretOption?: string;
  /** On an option a `fileOptions` entry set from a ConfigMap or Secret: its content is the cluster's. */
  external?: boolean;
  /** On an option a `fileOptions` entry set: the option as written (dots for nested tables). */
  fileOption?: string;
}

export interface SpecIssue {
  /** Spec path, or the data plane's key path when nothing was recorded for it. */
  path: string;
  message: string;
  severity: "error" | "warning";
  /** The problem lies under a Secret's value (only the cluster can tell; admission skips it). */
  secret: boolean;
  /**
   * An option key the plugin does not know. The data plane ignores those (a warning), so a misspelt
   * security option is silently off: admission refuses them, status conditions show them.
   */
  unknownOption: boolean;
}

/** A display path's parts: `a."b.c"[0].d` → ["a", "b.c", 0, "d"]. */
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /(?:^|\.)(?:"((?:[^"\\]|\\.)*)"|([^."[\]]+))|\[(\d+)\]/g;
  for (const m of path.matchAll(re)) out.push(m[3] !== undefined ? Number(m[3]) : (m[1] ?? m[2])!);
  return out;
}

export class SpecPaths {
  private readonly entries = new Map<string, SpecPathEntry>();

  add(toml: readonly (string | number)[], spec: string, extra: Omit<SpecPathEntry, "spec"> = {}): void {
    this.entries.set(displayPath(toml), { spec, ...extra });
  }

  /** The longest recorded prefix of a data-plane key path, and what follows it. */
  resolve(path: string): { entry: SpecPathEntry; rest: string } | undefined {
    let best: { key: string; entry: SpecPathEntry } | undefined;
    for (const [key, entry] of this.entries) {
      if (!path.startsWith(key)) continue;
      const next = path[key.length];
      if (next !== undefined && next !== "." && next !== "[") continue;
      if (!best || key.length > best.key.length) best = { key, entry };
    }
    return best && { entry: best.entry, rest: path.slice(best.key.length) };
  }

  translate(path: string): string {
    const r = this.resolve(path);
    return r ? r.entry.spec + r.rest : path;
  }

  /** A data-plane problem in spec terms; an unknown option key comes with the closest known key. */
  issue(p: Problem): SpecIssue {
    const r = this.resolve(p.path);
    const path = r ? r.entry.spec + r.rest : p.path;
    const secret = Boolean(r?.entry.secretOption) || Boolean(r?.entry.external) || /\.secretOptions\[/.test(path);
    if (p.message !== "unknown key")
      return { path, message: p.message, severity: p.severity, secret, unknownOption: false };
    let hint: string | undefined;
    if (r?.entry.secretOption !== undefined && r.rest === "") {
      // `<option>_file` is what we wrote; the user wrote `<option>`: suggest among secret-capable options.
      const names = [...keysAt(r.entry.schema!, [])].filter((k) => k.endsWith("_file")).map((k) => k.slice(0, -5));
      hint = closest(r.entry.secretOption, names);
    } else if (r?.entry.fileOption !== undefined && r.rest === "") {
      const parts = r.entry.fileOption.split(".");
      hint = r.entry.schema ? closest(parts.at(-1)!, keysAt(r.entry.schema, parts.slice(0, -1))) : undefined;
      if (hint) hint = [...parts.slice(0, -1), hint].join(".");
    } else if (r?.entry.schema) {
      const parts = parsePath(r.rest);
      const key = parts.at(-1);
      if (typeof key === "string") hint = closest(key, keysAt(r.entry.schema, parts.slice(0, -1)));
    }
    return {
      // The key the user wrote is the entry's `option` value.
      path: r?.entry.fileOption !== undefined && r.rest === "" ? `${path}.option` : path,
      message: `unknown option${hint ? `; did you mean "${hint}"?` : ""}`,
      severity: p.severity,
      secret: false,
      unknownOption: true,
    };
  }
}

export const formatIssue = (i: SpecIssue): string => `${i.path}: ${i.message}`;
