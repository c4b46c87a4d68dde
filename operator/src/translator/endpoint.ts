/**
 * A HarmonyEndpoint on its own: the data-plane endpoint options it stands for, and whether the
 * data plane would accept them. The check runs the data plane's own validator on the smallest
 * config that contains the endpoint, so an endpoint's status says what is wrong with it even
 * before a pipeline uses it, in the same words the pipeline's status would.
 */
import TOML from "@iarna/toml";
import { checkConfig, memoryFs } from "@harmony/dataplane";
import type { HarmonyEndpoint } from "../api/v1alpha1.js";

/** Typed spec fields win over the free-form `options` they duplicate. */
export function endpointOptions(spec: HarmonyEndpoint["spec"]): Record<string, unknown> {
  const options: Record<string, unknown> = { ...(spec.options ?? {}) };
  if (spec.pathPrefix !== undefined) options.path_prefix = spec.pathPrefix;
  if (spec.methods !== undefined) options.methods = spec.methods;
  if (spec.aeTitle !== undefined) options.local_aet = spec.aeTitle;
  if (spec.port !== undefined) options.port = spec.port;
  return options;
}

export interface EndpointVerdict {
  ok: boolean;
  reason: "Accepted" | "UnsupportedValue" | "InvalidOptions";
  message: string;
}

export function checkEndpoint(ep: HarmonyEndpoint): EndpointVerdict {
  const doc = {
    proxy: { id: "endpoint-check" },
    network: { n: { http: { bind_address: "127.0.0.1", bind_port: 1 } } },
    pipelines: { p: { networks: ["n"], endpoints: ["endpoint"], backends: ["b"] } },
    endpoints: { endpoint: { service: ep.spec.service, options: endpointOptions(ep.spec) } },
    backends: { b: { service: "echo" } },
  };
  const file = "/endpoint.toml";
  const r = checkConfig(file, { fs: memoryFs({ [file]: TOML.stringify(doc as TOML.JsonMap) }) });
  const mine = r.problems.filter((p) => p.path.startsWith("endpoints.endpoint"));
  // Key paths as the user wrote them: spec.options.x, not the throwaway config's endpoints.endpoint.options.x.
  const say = (ps: typeof mine) =>
    ps.map((p) => `${p.path.replace(/^endpoints\.endpoint/, "spec")}: ${p.message}`).join("; ");
  const errors = mine.filter((p) => p.severity === "error");
  if (errors.length === 0) {
    const warnings = say(mine);
    return {
      ok: true,
      reason: "Accepted",
      message: `${ep.spec.service} endpoint accepted${warnings ? `; warnings: ${warnings}` : ""}`,
    };
  }
  const message = say(errors);
  const unsupported = errors.some((p) => /unknown endpoint service|not available in this build/.test(p.message));
  return { ok: false, reason: unsupported ? "UnsupportedValue" : "InvalidOptions", message };
}
