/** The data plane as a library: what the operator and tools may use. */
export { checkConfig, type CheckResult, type CheckOptions } from "./check.js";
export { IncrementalChecker } from "./check-incremental.js";
export { memoryFs, diskFs, type ConfigFs } from "./config/load.js";
export { displayPath, formatProblem, type Problem } from "./config/problems.js";
export { configJsonSchema } from "./config/schema.js";
export type { HarmonyConfig } from "./config/schema.js";
export { createRegistry } from "./plugins/registry.js";
export { VERSION } from "./version.js";
export { SHARD_MANIFEST, shardDigest, shardDigestKey, isShardFile } from "./config/shards.js";
