/**
 * The networks' HTTP listeners across reloads, changed so that a reload never takes a port down.
 *
 * A reload first binds every listener it needs that is new or has moved, while the old ones keep
 * serving; if one of those binds fails, the ones just bound are closed and the reload fails with
 * nothing changed. Only a listener whose port we hold ourselves (same port, other settings, or a
 * port another of our networks is leaving) has to be closed before its successor can bind; that is
 * done last, and if the successor cannot bind the old listener is bound again. Listeners whose
 * settings did not change are left alone, connections and all; a TLS listener whose certificates
 * alone changed (pairs, SNI list) keeps its server and takes them in place when the change commits.
 */
import type { Logger } from "winston";
import type { ListenerSpec } from "../config/resolve.js";
import type { BoundListener } from "./listeners.js";
import { certificateKey } from "./tls-certs.js";

export interface Listener {
  network: string;
  spec: ListenerSpec;
  fingerprint: string;
  server: BoundListener;
}

export type Bind = (network: string, spec: ListenerSpec) => Promise<BoundListener>;

/** A staged change: `commit` makes it the live set and closes what it replaced. */
export interface ListenerChange {
  commit(): void;
}

/**
 * Every setting but the certificates counts: a field added to ListenerSpec later rebinds when it
 * changes, with no list to keep. Certificates (certificateKey) are swapped into the running server.
 */
const fingerprint = (s: ListenerSpec) => {
  const { certPath, keyPath: _k, cert: _c, key: _p, sni: _s, certReloadMs: _r, ...rest } = s;
  return JSON.stringify(sortKeys({ ...rest, tls: certPath !== undefined }));
};

/** A copy with every object's keys sorted (an array replacer would also drop nested keys, such as `sni`'s). */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, sortKeys(o[k])]),
  );
}

/** Wildcard and specific addresses on one port conflict; two different specific ones do not. */
function conflicts(a: ListenerSpec, b: ListenerSpec, bPort: number | undefined): boolean {
  if (a.port === 0 || a.port !== bPort) return false;
  const wild = (x: string) => x === "0.0.0.0" || x === "::" || x === "";
  return a.address === b.address || wild(a.address) || wild(b.address);
}

const errorCode = (e: unknown) => (e as NodeJS.ErrnoException).code;

export class ListenerSet {
  private readonly live = new Map<string, Listener>();

  constructor(
    private readonly bind: Bind,
    private readonly logger: Logger,
  ) {}

  get(network: string): Listener | undefined {
    return this.live.get(network);
  }

  values(): IterableIterator<Listener> {
    return this.live.values();
  }

  clear(): Listener[] {
    const all = [...this.live.values()];
    this.live.clear();
    return all;
  }

  /**
   * Binds what `wanted` needs beside the live listeners. Rejects (with everything as it was) when a
   * listener cannot be bound; the error names the network, address and port.
   */
  async stage(wanted: Map<string, ListenerSpec>, graceMs: number): Promise<ListenerChange> {
    const opened = new Map<string, Listener>();
    const retiring: Listener[] = [];
    const takeovers: [string, ListenerSpec, Listener][] = [];
    // Old listeners closed early to free their port, with the server to restore if the reload fails.
    const displaced: Listener[] = [];
    // Live TLS listeners whose certificates alone change: updated in place at commit.
    const recertified: [Listener, ListenerSpec][] = [];

    const undo = async () => {
      await Promise.all([...opened.values()].map((l) => l.server.close(0)));
      for (const old of displaced) {
        try {
          old.server = await this.retry(old.network, old.spec);
        } catch (e) {
          // Nothing else holds the network now: readiness reports it until a reload binds it.
          this.live.delete(old.network);
          this.logger.error("listener lost: its port could not be bound again", {
            network: old.network,
            address: old.spec.address,
            port: old.spec.port,
            error: (e as Error).message,
          });
        }
      }
    };

    try {
      for (const [name, spec] of wanted) {
        const cur = this.live.get(name);
        const fp = fingerprint(spec);
        if (cur && cur.fingerprint === fp) {
          if (certificateKey(cur.spec) !== certificateKey(spec)) recertified.push([cur, spec]);
          continue;
        }
        try {
          opened.set(name, { network: name, spec, fingerprint: fp, server: await this.bind(name, spec) });
        } catch (e) {
          const holder = this.holderOf(spec, wanted);
          if (errorCode(e) !== "EADDRINUSE" || !holder) throw failure(name, spec, e);
          takeovers.push([name, spec, holder]);
        }
      }
      // Last, the ports we hold ourselves: the old listener goes, the new one binds in its place.
      for (const [name, spec, holder] of takeovers) {
        if (!displaced.includes(holder)) {
          displaced.push(holder);
          // The port is released at once; requests already on the old connections may finish.
          void holder.server.close(graceMs);
        }
        try {
          opened.set(name, {
            network: name,
            spec,
            fingerprint: fingerprint(spec),
            server: await this.retry(name, spec),
          });
        } catch (e) {
          throw failure(name, spec, e);
        }
      }
    } catch (e) {
      await undo();
      throw e;
    }

    for (const [name, l] of this.live) if (!wanted.has(name) || opened.has(name)) retiring.push(l);
    return {
      commit: () => {
        for (const old of retiring) {
          this.live.delete(old.network);
          // Requests already on the old socket may finish; new connections go to the new listener.
          if (!displaced.includes(old)) void old.server.close(graceMs);
          this.logger.info("listener closed", { network: old.network, address: old.spec.address, port: old.spec.port });
        }
        for (const [l, spec] of recertified) {
          try {
            l.server.updateCertificates?.(spec);
            l.spec = spec;
          } catch (e) {
            // Checked by the build, so not expected; the listener keeps serving its previous set.
            this.logger.error("TLS certificates not updated; the previous ones stay in use", {
              network: l.network,
              error: (e as Error).message,
            });
          }
        }
        for (const [name, l] of opened) {
          this.live.set(name, l);
          const addr = l.server.address();
          this.logger.info("listener started", { network: name, address: l.spec.address, port: addr?.port });
        }
      },
    };
  }

  /** The live listener, changing or going away in `wanted`, that holds the port `spec` asks for. */
  private holderOf(spec: ListenerSpec, wanted: Map<string, ListenerSpec>): Listener | undefined {
    for (const l of this.live.values()) {
      const next = wanted.get(l.network);
      const staying = next !== undefined && fingerprint(next) === l.fingerprint;
      if (!staying && conflicts(spec, l.spec, l.server.address()?.port)) return l;
    }
    return undefined;
  }

  /** Binds, retrying briefly while the listener just closed still holds the port. */
  private async retry(network: string, spec: ListenerSpec): Promise<BoundListener> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.bind(network, spec);
      } catch (e) {
        if (errorCode(e) !== "EADDRINUSE" || attempt >= 20) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

function failure(network: string, spec: ListenerSpec, e: unknown): Error {
  const err = new Error(`network "${network}" (${spec.address}:${spec.port}): ${(e as Error).message}`);
  (err as NodeJS.ErrnoException).code = errorCode(e);
  return err;
}
