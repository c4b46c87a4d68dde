/**
 * A HarmonyEndpoint on its own: the data-plane endpoint options it stands for, and whether the
 * data plane would accept them. The check runs the data plane's own validator on the smallest
 * config that contains the endpoint, so an endpoint's status says what is wrong with it even
 * before a pipeline uses it, in the same words the pipeline's status would.
 */
import TOML from "@iarna/toml";
import winston from "winston";
import { checkConfig, createRegistry, memoryFs } from "@harmony/dataplane";
import type { HarmonyEndpoint } from "../api/v1alpha1.js";
import { SpecPaths, formatIssue, type SpecIssue } from "./spec-paths.js";

/** Data-plane endpoint options the typed spec fields become. */
export const ENDPOINT_FIELDS = {
  path_prefix: "pathPrefix",
  methods: "methods",
  local_aet: "aeTitle",
  port: "port",
} as const;

/** Typed spec fields win over the free-form `options` they duplicate. */
export function endpointOptions(spec: HarmonyEndpoint["spec"]): Record<string, unknown> {
  const options: Record<string, unknown> = { ...(spec.options ?? {}) };
  for (const [opt, field] of Object.entries(ENDPOINT_FIELDS)) {
    if (spec[field] !== undefined) options[opt] = spec[field];
  }
  return options;
}

export interface EndpointVerdict {
  ok: boolean;
  reason: "Accepted" | "UnsupportedValue" | "InvalidOptions";
  message: string;
  /** Every problem, in spec paths (unknown option keys are errors). */
  issues: SpecIssue[];
}

const registry = createRegistry();
/**
 * What plugins log while the check builds them (errors only), one for every check: without it each
 * check made its own winston logger, a good part of a check this small, once per endpoint (10,000
 * as 10,000 endpoints arrive, and on every operator start).
 */
const logger = winston.createLogger({
  level: "error",
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  defaultMeta: { component: "endpoint-check" },
  transports: [new winston.transports.Console({ stderrLevels: [] })],
});

export function checkEndpoint(ep: HarmonyEndpoint): EndpointVerdict {
  const doc = {
    proxy: { id: "endpoint-check" },
    network: { n: { http: { bind_address: "127.0.0.1", bind_port: 1 } } },
    pipelines: { p: { networks: ["n"], endpoints: ["endpoint"], backends: ["b"] } },
    endpoints: { endpoint: { service: ep.spec.service, options: endpointOptions(ep.spec) } },
    backends: { b: { service: "echo" } },
  };
  // Key paths as the user wrote them: spec.options.x, not the throwaway config's endpoints.endpoint.options.x.
  const paths = new SpecPaths();
  paths.add(["endpoints", "endpoint"], "spec");
  paths.add(["endpoints", "endpoint", "options"], "spec.options", {
    schema: registry.endpoint(ep.spec.service)?.options,
  });
  for (const [opt, field] of Object.entries(ENDPOINT_FIELDS)) {
    paths.add(["endpoints", "endpoint", "options", opt], `spec.${field}`);
  }
  const file = "/endpoint.toml";
  const r = checkConfig(file, { fs: memoryFs({ [file]: TOML.stringify(doc as TOML.JsonMap) }), registry, logger });
  const issues = r.problems.filter((p) => p.path.startsWith("endpoints.endpoint")).map((p) => paths.issue(p));
  const say = (is: SpecIssue[]) => is.map(formatIssue).join("; ");
  // An unknown option is refused, not warned about: the data plane would run without it, and the
  // pipelines using this endpoint are left out of their gateway's config for the same reason.
  const errors = issues.filter((p) => p.severity === "error" || p.unknownOption);
  if (errors.length === 0) {
    const warnings = say(issues);
    return {
      ok: true,
      reason: "Accepted",
      message: `${ep.spec.service} endpoint accepted${warnings ? `; warnings: ${warnings}` : ""}`,
      issues,
    };
  }
  const unsupported = errors.some((p) => /unknown endpoint service|not available in this build/.test(p.message));
  return { ok: false, reason: unsupported ? "UnsupportedValue" : "InvalidOptions", message: say(errors), issues };
}
