// A node:test reporter that writes one line per failed test: `file:line  name  —  first line of the error`.
// `make test-only` sends it to a file beside the spec output and prints the lines last, so the tail of a
// long CI log (often all a reader gets) names what failed instead of only `Error 1`.
import { relative } from "node:path";

// Failures that only echo another one: a suite whose subtest failed, a test cancelled because its parent was.
const ECHOES = new Set(["subtestsFailed", "cancelledByParent"]);

export default async function* failures(source) {
  for await (const event of source) {
    if (event.type !== "test:fail") continue;
    const { name, file, line, details } = event.data;
    const error = details?.error;
    if (ECHOES.has(error?.failureType)) continue;
    const cause = error?.cause ?? error;
    const message =
      String(cause instanceof Error ? `${cause.name}: ${cause.message}` : cause)
        .split("\n")
        .find((l) => l.trim() !== "") ?? "";
    const where = file ? `${relative(process.cwd(), file)}:${line ?? "?"}` : "?";
    yield `${where}  ${name}  —  ${message.trim().slice(0, 240)}\n`;
  }
}
