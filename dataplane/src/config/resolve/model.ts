/**
 * The model a resolved config becomes: what the runtime (listeners, pipeline compiler, management)
 * is built from. Both layouts (0.4 and newer) end up in this one shape; nothing downstream knows
 * the difference.
 */
import type { ParseLimits } from "../../pipeline/body-parse.js";
import type { PathNormalization } from "../../pipeline/canonical-path.js";
import type { HarmonyConfig, LogLevel } from "../schema.js";
import type { HarmonyNetwork } from "../../network/config.js";
import type { AnyPlugin } from "../../plugins/types.js";

export interface ListenerSpec {
  address: string;
  port: number;
  /** Absolute paths, checked to form a usable certificate and key at load. */
  certPath?: string;
  keyPath?: string;
  /**
   * The pair as this build read it: from the API's revision when that is the source, where the
   * kubelet's mount can lack the files for a minute. The listener starts with it; the paths are
   * what it re-reads on rotation.
   */
  cert?: Buffer;
  key?: Buffer;
  http2?: boolean;
  certReloadMs?: number;
  /** More certificates by SNI server name (lower-cased; `*.suffix` wildcards); absolute paths, and the pair as read. */
  sni?: { hostname: string; certPath: string; keyPath: string; cert: Buffer; key: Buffer }[];
  /** Redirect everything to https on this port. */
  forceHttpsPort?: number;
  /** Time allowed for a request's headers (slowloris defence). */
  headersTimeoutMs?: number;
  /** How long an idle keep-alive client connection stays open (proxy.client_keepalive_timeout_ms). */
  keepAliveTimeoutMs?: number;
  /** How long a client may take none of an answer's bytes (proxy.client_send_timeout_ms; 0: forever). */
  sendTimeoutMs?: number;
  /**
   * Plain listeners only: "llhttp" serves body-less backend-only requests on a lean reader and
   * hands the rest to node:http (runtime/lane/); "node" is node:http throughout.
   */
  http1Server?: "llhttp" | "node";
  /**
   * `harmony_network`: the inter-gateway listener of that network. certPath/keyPath are its
   * identity; a client certificate is requested and verified against this trust bundle.
   */
  harmony?: { network: string; caPath: string };
}

export interface ResolvedPipeline {
  name: string;
  description: string;
  networks: string[];
  endpoints: string[];
  backend: string | undefined;
  /** Middleware instance names, request side, in run order. */
  left: string[];
  /** Middleware instance names, response side, in run order. */
  right: string[];
}

export interface ResolvedPlugin {
  name: string;
  plugin: AnyPlugin;
  options: Record<string, unknown>;
}

export interface ResolvedConfig {
  id: string;
  logLevel: LogLevel;
  accessLog: boolean;
  /** `metrics.gc` as written (undefined: not written, which means on). */
  gcMetric?: boolean;
  logFile: string | undefined;
  bodyLimit: number;
  /** Client body timeout (pipeline/body-timeout.ts). */
  bodyTimeout: { idleMs: number; minRate: number };
  jsonDepthLimit: number;
  parseLimits: ParseLimits;
  shutdownTimeoutMs: number;
  /** SIGTERM → stop listening: served meanwhile, not ready, Connection: close (runtime/gateway.ts). */
  drainDelayMs: number;
  /** How request paths are made canonical (`proxy.path_normalization`). */
  pathNormalization: PathNormalization;
  management:
    | { enabled: false }
    | {
        enabled: true;
        basePath: string;
        network: string;
        token: string | undefined;
        tokenSource: string | undefined;
        /** management.allowed_hosts as written. */
        allowedHosts: string[];
      };
  networks: Map<string, ListenerSpec | undefined>;
  /** `[harmony_networks.*]` that loaded. */
  harmonyNetworks: ReadonlyMap<string, HarmonyNetwork>;
  pipelines: ResolvedPipeline[];
  endpoints: Map<string, ResolvedPlugin>;
  backends: Map<string, ResolvedPlugin>;
  middleware: Map<string, ResolvedPlugin>;
  /** The merged document, for /admin/config (redacted there). */
  document: HarmonyConfig;
}
