/** The BuildContext plugins get, over a real or in-memory config tree. */
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { Logger } from "winston";
import type { LoadedConfig } from "./config/load.js";
import type { BuildContext } from "./plugins/types.js";
import type { SharedResources } from "./runtime/resources.js";
import type { Metrics } from "./observability/metrics.js";
import type { HarmonyNetworkSection } from "./config/schema.js";
import { loadHarmonyNetworks } from "./network/config.js";

export type FileReader = (absolutePath: string) => Buffer;

export const readFromDisk: FileReader = (p) => readFileSync(p);

export function buildContextFactory(
  loaded: LoadedConfig,
  logger: Logger,
  resources: SharedResources,
  readFile: FileReader = readFromDisk,
  metrics?: Metrics,
): (name: string) => BuildContext {
  const resolvePath = (p: string) => (isAbsolute(p) ? p : resolve(loaded.baseDir, p));
  // Loaded once per config build: every plugin and the resolver see the same directory.
  let networks: ReturnType<typeof loadHarmonyNetworks> | undefined;
  const harmony = () =>
    (networks ??= loadHarmonyNetworks((loaded.raw.harmony_networks ?? {}) as Record<string, HarmonyNetworkSection>, {
      readFile: (p) => readFile(resolvePath(p)),
      resolvePath,
    }));
  return (name) => ({
    name,
    baseDir: loaded.baseDir,
    transformsDir: loaded.transformsDir,
    logger,
    resources,
    resolvePath,
    ...(metrics ? { metrics } : {}),
    readFile: (p) => readFile(resolvePath(p)),
    harmonyNetworks: () => harmony().networks,
    harmonyNetworkProblems: () => harmony().problems,
    table: (t) => {
      const v = loaded.raw[t];
      return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
    },
  });
}
