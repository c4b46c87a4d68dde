/** The Harmony 0.13-style fixture tree (fixtures/harmony-0.13), copied with its fixed ports replaced. */
import { cpSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./helpers.js";

export const FIXTURE_013 = join(ROOT, "dataplane/test/fixtures/harmony-0.13");

/** The fixture in a temp dir, with text replaced in every TOML file; returns the directory. */
export function fixture013(replace: [string, string][] = []): string {
  const dir = tempDir();
  cpSync(FIXTURE_013, dir, { recursive: true });
  for (const sub of ["", "pipelines", "mesh"]) {
    for (const name of readdirSync(join(dir, sub)).filter((n) => n.endsWith(".toml"))) {
      const file = join(dir, sub, name);
      let text = readFileSync(file, "utf8");
      for (const [from, to] of replace) text = text.split(from).join(to);
      writeFileSync(file, text);
    }
  }
  return dir;
}
