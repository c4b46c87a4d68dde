/**
 * The gateway-wide settings of `[proxy]`, `[logging]` and `[metrics]`: identity, log level and file, body and
 * parse limits, timeouts, path normalization. Each has its default here.
 */
import { DEFAULT_PARSE_LIMITS } from "../../pipeline/body-parse.js";
import { DEFAULT_PATH_NORMALIZATION } from "../../pipeline/canonical-path.js";
import type { HarmonyConfig } from "../schema.js";
import type { ResolvedConfig } from "./model.js";
import type { Report } from "./report.js";

export const DEFAULT_BODY_LIMIT = 10 * 1024 * 1024;

export type Settings = Pick<
  ResolvedConfig,
  | "id"
  | "logLevel"
  | "accessLog"
  | "gcMetric"
  | "logFile"
  | "bodyLimit"
  | "bodyTimeout"
  | "jsonDepthLimit"
  | "parseLimits"
  | "shutdownTimeoutMs"
  | "drainDelayMs"
  | "pathNormalization"
>;

export function resolveSettings(doc: HarmonyConfig, at: Report): Settings {
  const proxy = doc.proxy ?? {};
  const id = proxy.id ?? proxy.name;
  if (!id) at(["proxy"], "proxy.id (0.4 layout) or proxy.name (newer layout) is required");

  const logging = doc.logging ?? {};
  if (logging.log_to_file && !logging.log_file_path)
    at(["logging", "log_file_path"], "is required when log_to_file = true");

  const limits = proxy.content_limits ?? {};
  return {
    id: id ?? "",
    logLevel: logging.log_level ?? proxy.log_level ?? "info",
    accessLog: logging.access_log ?? true,
    // Left out unless written, so a config without [metrics] resolves to the same model as before.
    ...(doc.metrics?.gc !== undefined ? { gcMetric: doc.metrics.gc } : {}),
    logFile: logging.log_to_file ? logging.log_file_path : undefined,
    bodyLimit: limits.max_body_size ?? DEFAULT_BODY_LIMIT,
    bodyTimeout: { idleMs: proxy.client_body_timeout_ms ?? 60_000, minRate: proxy.client_body_min_rate ?? 500 },
    jsonDepthLimit: limits.max_json_depth ?? 100,
    parseLimits: {
      maxXmlDepth: limits.max_xml_depth ?? DEFAULT_PARSE_LIMITS.maxXmlDepth,
      maxCsvRows: limits.max_csv_rows ?? DEFAULT_PARSE_LIMITS.maxCsvRows,
      maxMultipartFiles: limits.max_multipart_files ?? DEFAULT_PARSE_LIMITS.maxMultipartFiles,
      maxFormFields: limits.max_form_fields ?? DEFAULT_PARSE_LIMITS.maxFormFields,
    },
    shutdownTimeoutMs: proxy.shutdown_timeout_ms ?? 30_000,
    drainDelayMs: proxy.drain_delay_ms ?? 0,
    pathNormalization: {
      encodedSlash: proxy.path_normalization?.encoded_slash ?? DEFAULT_PATH_NORMALIZATION.encodedSlash,
      semicolon: proxy.path_normalization?.semicolon ?? DEFAULT_PATH_NORMALIZATION.semicolon,
      caseInsensitive: proxy.path_normalization?.case_insensitive ?? DEFAULT_PATH_NORMALIZATION.caseInsensitive,
    },
  };
}
