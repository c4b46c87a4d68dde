/**
 * One keep-alive connection pool for every API request the operator makes.
 *
 * @kubernetes/client-node 1.4 builds a new `https.Agent` (keepAlive off) for every request
 * (`KubeConfig.applySecurityAuthentication` → `createAgent`; kubernetes-client/javascript#2893),
 * and its `createAgent` is private, so each status write paid a TCP
 * connect, a new TLS SecureContext and a full handshake, on both sides: at 10,000 pipelines that
 * was 20–30 % of the operator's CPU, and as much again on the API server (bench/README.md,
 * operator-scale). Every API client the operator makes comes from one KubeConfig (provider/kube.ts:
 * the informers' lists, the status and apply writes, the API health check, the leader Lease), so
 * this subclass hands all of them one keep-alive agent and their requests reuse its sockets.
 *
 * The credentials still come from client-node on every request (a rotated token or client
 * certificate from a file or an exec plugin is read as before): the agent is keyed by the TLS
 * material client-node put into the agent it made, and a change of that material gets a fresh
 * agent. Watches keep their own agent per watch (`applyToFetchOptions`): a watch holds its socket
 * for its whole life, so there is nothing to reuse.
 */
import { createHash } from "node:crypto";
import { Agent as HttpAgent, type AgentOptions } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { KubeConfig, type RequestContext } from "@kubernetes/client-node";

/**
 * How long an idle socket stays in the pool. Below the API server's own idle timeout (90 s in
 * k8s.io/apiserver's secure serving), so the operator closes first and never sends a request on a
 * socket the server is closing at that moment.
 */
export const IDLE_SOCKET_MS = 60_000;

/** The TLS settings that tell one client identity and server trust from another. */
const TLS_KEYS = ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"] as const;

function fingerprint(kind: string, options: Record<string, unknown>): string {
  const h = createHash("sha256").update(kind);
  for (const k of TLS_KEYS) {
    const v = options[k];
    h.update(`\0${k}=`);
    // PEM strings, Buffers, or arrays of them (several CAs); booleans for rejectUnauthorized.
    if (v !== undefined) h.update(Buffer.isBuffer(v) ? v : typeof v === "string" ? v : JSON.stringify(v));
  }
  return h.digest("hex");
}

export class KeepAliveKubeConfig extends KubeConfig {
  private shared: { key: string; agent: HttpAgent } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const made = context.getAgent();
    // Only the plain agents client-node makes for a direct connection; a proxy agent (cluster
    // proxyUrl) is left as client-node built it.
    const kind = made?.constructor === HttpsAgent ? "https" : made?.constructor === HttpAgent ? "http" : undefined;
    if (!made || !kind) return;
    context.setAgent(this.agentFor(kind, (made as HttpAgent & { options: AgentOptions }).options));
  }

  private agentFor(kind: "http" | "https", options: AgentOptions): HttpAgent {
    const key = fingerprint(kind, options as Record<string, unknown>);
    if (this.shared?.key !== key) {
      // A replaced agent is not destroyed: requests may still be in flight on it; its idle
      // sockets close after IDLE_SOCKET_MS and it goes with them.
      const opts = { ...options, keepAlive: true, timeout: IDLE_SOCKET_MS };
      this.shared = { key, agent: kind === "https" ? new HttpsAgent(opts) : new HttpAgent(opts) };
    }
    return this.shared.agent;
  }
}
