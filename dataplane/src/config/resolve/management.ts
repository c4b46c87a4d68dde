/**
 * `[management]`: the admin API's network (which must have an HTTP listener), its base path,
 * allowed hosts, and its bearer token, from the config, an environment variable or a file.
 */
import type { HarmonyConfig } from "../schema.js";
import type { ListenerSpec, ResolvedConfig } from "./model.js";
import type { BuildCtxFactory, Report } from "./report.js";

export function resolveManagement(
  doc: HarmonyConfig,
  networks: ReadonlyMap<string, ListenerSpec | undefined>,
  buildCtx: BuildCtxFactory,
  env: NodeJS.ProcessEnv,
  at: Report,
): ResolvedConfig["management"] {
  const mg = doc.management;
  if (!mg?.enabled) return { enabled: false };
  const network = mg.network;
  if (!network) at(["management", "network"], "is required when management is enabled");
  else if (!networks.has(network)) at(["management", "network"], `network "${network}" is not defined`);
  else if (!networks.get(network))
    at(["management", "network"], `network "${network}" has no [network.${network}.http] listener`);
  let token: string | undefined = mg.token;
  let tokenSource: string | undefined = mg.token ? "management.token" : undefined;
  if (mg.token_env) {
    token = env[mg.token_env];
    tokenSource = `$${mg.token_env}`;
    if (!token) at(["management", "token_env"], `environment variable ${mg.token_env} is not set`);
  } else if (mg.token_file) {
    try {
      token = buildCtx("management").readFile(mg.token_file).toString("utf8").trim();
      tokenSource = mg.token_file;
    } catch (e) {
      at(["management", "token_file"], `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  const basePath = "/" + (mg.base_path ?? "admin").replace(/^\/+|\/+$/g, "");
  if (basePath === "/") at(["management", "base_path"], "must not be empty");
  const allowedHosts = mg.allowed_hosts ?? [];
  if (!network) return { enabled: false }; // reported above
  return { enabled: true, basePath, network, token, tokenSource, allowedHosts };
}
