import { isAbsolute, relative } from "node:path";

/** A config problem, located as precisely as we can: file, line, column and key path. */
export type Severity = "error" | "warning";

export interface Problem {
  severity: Severity;
  file: string;
  line?: number;
  column?: number;
  /** Dotted key path, e.g. `pipelines.core.backends[0]`. Empty for whole-file problems. */
  path: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  const rel = relative(process.cwd(), p.file);
  const file = rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : p.file;
  const where = [file, p.line, p.column].filter((x) => x !== undefined).join(":");
  return `${where}: ${p.severity}: ${p.path ? `${p.path}: ` : ""}${p.message}`;
}

/** Main file first, then the others by name; by line within a file. */
export function sortProblems(problems: Problem[], mainFile: string): Problem[] {
  const rank = (p: Problem) => (p.file === mainFile ? "" : p.file);
  return [...problems].sort(
    (a, b) => rank(a).localeCompare(rank(b)) || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0),
  );
}

export const hasErrors = (problems: readonly Problem[]): boolean => problems.some((p) => p.severity === "error");

/** Renders a key path for humans: `pipelines.core.backends[0]`, quoting names that need it. */
export function displayPath(parts: readonly (string | number)[]): string {
  let out = "";
  for (const part of parts) {
    if (typeof part === "number" || /^\d+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(part)) out += out ? `.${part}` : part;
    else out += `${out ? "." : ""}"${part}"`;
  }
  return out;
}

export class ConfigError extends Error {
  constructor(readonly problems: Problem[]) {
    super(
      `invalid configuration (${problems.filter((p) => p.severity === "error").length} error(s)):\n` +
        problems.map(formatProblem).join("\n"),
    );
    this.name = "ConfigError";
  }
}
