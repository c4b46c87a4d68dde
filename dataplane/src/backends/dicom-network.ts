/**
 * Where the `dicom` backend calls: its own host, port and AE title, or a `target` harmony:// URI
 * resolved through the network's directory (address, port, ae_title) and reached over mutual TLS
 * through a TlsBridge shared by every generation that resolves the same way.
 */
import { createHash } from "node:crypto";
import type { BuildContext, OptionProblem } from "../plugins/types.js";
import { resolveHarmonyUri } from "../network/target.js";
import { TlsBridge } from "../network/tls-bridge.js";

interface PeerOptions {
  host?: string;
  port?: number;
  aet?: string;
  target?: string;
  connect_timeout_ms: number;
}

export function peerProblems(o: PeerOptions, ctx: BuildContext): OptionProblem[] {
  if (o.target === undefined) {
    const missing = (["host", "port", "aet"] as const).filter((k) => o[k] === undefined);
    return missing.map((k) => ({ path: [k], message: "is required (or give target = harmony://...)" }));
  }
  const out: OptionProblem[] = [];
  for (const k of ["host", "port", "aet"] as const)
    if (o[k] !== undefined)
      out.push({ path: [k], message: "comes from the directory with target; not used", severity: "warning" });
  const r = resolveHarmonyUri(ctx.harmonyNetworks(), o.target);
  if (!r.ok) out.push({ path: ["target"], message: r.error, severity: r.noNetwork ? "error" : "warning" });
  else if (r.entry.protocol !== "dicom" || !r.entry.ae_title)
    out.push({
      path: ["target"],
      message: `${o.target} is a ${r.entry.protocol} endpoint, not dicom with an ae_title`,
    });
  return out;
}

export type NetworkPeer =
  | { ok: true; peer: { host: string; calledAet: string }; bridge: TlsBridge; key: string }
  | { ok: false; error: string };

/** Undefined without a target; otherwise the peer to call (through the bridge) or why there is none. */
export function networkPeer(o: PeerOptions, ctx: BuildContext): NetworkPeer | undefined {
  if (o.target === undefined) return undefined;
  const r = resolveHarmonyUri(ctx.harmonyNetworks(), o.target);
  if (!r.ok) return { ok: false, error: r.error };
  const e = r.entry;
  if (e.protocol !== "dicom" || !e.ae_title) return { ok: false, error: `${o.target} is not a dicom endpoint` };
  // One bridge per destination and identity material: a rotation or a moved entry is a new bridge.
  const key =
    "dimse-tls-bridge:" +
    createHash("sha256")
      .update(JSON.stringify([e.address, e.port, e.identity, o.connect_timeout_ms]))
      .update(r.tls.cert)
      .update(r.tls.key)
      .update(r.tls.ca)
      .digest("hex");
  const bridge = ctx.resources.acquire(
    key,
    () => new TlsBridge(e.address, e.port, r.tls, o.connect_timeout_ms, ctx.logger),
  );
  return { ok: true, peer: { host: "127.0.0.1", calledAet: e.ae_title }, bridge, key };
}
