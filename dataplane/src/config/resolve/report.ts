/**
 * How every part of the resolver reports a problem: by key path, located at the file, line and
 * column that set that key (or its nearest parent that a file sets), in the order found.
 */
import type { LoadedConfig } from "../load.js";
import { displayPath, type Problem, type Severity } from "../problems.js";
import type { BuildContext } from "../../plugins/types.js";

export type KeyPath = (string | number)[];

export type Report = (path: KeyPath, message: string, severity?: Severity) => void;

/** The BuildContext a part hands a plugin or reads files through, by the name it is built under. */
export type BuildCtxFactory = (name: string) => BuildContext;

/** The problems list, starting with what loading found, and the reporter that appends to it. */
export function problemReporter(loaded: LoadedConfig): { problems: Problem[]; at: Report } {
  const problems: Problem[] = [...loaded.problems];
  const at: Report = (path, message, severity = "error") => {
    problems.push({ severity, ...loaded.locate(path), path: displayPath(path), message });
  };
  return { problems, at };
}
