/**
 * The messages between a group's primary and its workers (node:cluster's IPC channel, JSON), and
 * the request/reply bookkeeping both sides share. Every type starts with "harmony:" so prom-client's
 * own cluster messages (its metrics aggregation) pass alongside untouched.
 */
import type { ConfigOverlay } from "../../config/overlay.js";
import type { Readiness, ReloadResult } from "../gateway.js";

/** A ConfigOverlay as JSON carries it: Secret values in base64. */
export interface WireOverlay {
  dir: string;
  files: Record<string, string>;
  secretDir?: string;
  secrets: Record<string, string>;
}

export interface WorkerState {
  pid: number;
  readiness: Readiness;
  requests: number;
  last_reload: ReloadResult | undefined;
  watch: { dirs: string[]; files: string[] };
  /** Digest of each watched file as the live generation read it (config/watch.ts). */
  seen: [string, string][];
  /** Ports bound, by network. */
  ports: Record<string, number>;
}

/** What a worker asks the primary on behalf of its management API (the group answers). */
export type Ask = "reload" | "readiness" | "metrics" | "group";

export type ToWorker =
  | { t: "harmony:init"; ports: Record<string, number>; overlay?: WireOverlay }
  | { t: "harmony:reload"; id: number; trigger: string; ports: Record<string, number>; overlay?: WireOverlay }
  | { t: "harmony:state"; id: number }
  | { t: "harmony:answer"; id: number; value?: unknown; error?: string };

export type ToPrimary =
  | { t: "harmony:hello" }
  | { t: "harmony:started"; state: WorkerState }
  | { t: "harmony:answer"; id: number; value?: unknown; error?: string }
  | { t: "harmony:ask"; id: number; what: Ask; trigger?: string };

export function isHarmony<T extends { t: string }>(m: unknown): m is T {
  return typeof m === "object" && m !== null && String((m as { t?: unknown }).t).startsWith("harmony:");
}

export function toWire(o: ConfigOverlay | undefined): WireOverlay | undefined {
  if (!o) return undefined;
  const secrets: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.secrets)) secrets[k] = v.toString("base64");
  return { dir: o.dir, files: o.files, ...(o.secretDir ? { secretDir: o.secretDir } : {}), secrets };
}

export function fromWire(w: WireOverlay | undefined): ConfigOverlay | undefined {
  if (!w) return undefined;
  const secrets: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(w.secrets)) secrets[k] = Buffer.from(v, "base64");
  return { dir: w.dir, files: w.files, ...(w.secretDir ? { secretDir: w.secretDir } : {}), secrets };
}

/** Calls awaiting an answer, by id; a call fails after `timeoutMs` or when its peer goes away. */
export class Calls {
  private next = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; peer: unknown }
  >();

  /** Sends what `send` builds with a fresh id; resolves with the answer's value. */
  call<T>(peer: unknown, send: (id: number) => void, timeoutMs: number): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, peer });
      try {
        send(id);
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  answer(m: { id: number; value?: unknown; error?: string }): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.error !== undefined) p.reject(new Error(m.error));
    else p.resolve(m.value);
  }

  /** The peer is gone: its calls fail now rather than at their timeout. */
  failPeer(peer: unknown, why: string): void {
    for (const [id, p] of this.pending) {
      if (p.peer !== peer) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new Error(why));
    }
  }
}
