/**
 * The networks' HTTP listeners across reloads, changed so that a reload never takes a port down.
 *
 * - Settings unchanged: the listener is left alone, connections and all; a TLS listener whose
 *   certificates alone changed (pairs, SNI list) takes them in place when the change commits.
 * - Same address and port, other settings (TLS on or off, HTTP/2, timeouts): the new server adopts
 *   the old one's listening socket when the change commits (listeners.ts, adopt). The port never
 *   closes and connections already queued on it are accepted by the new server.
 * - Another address or port: the new listener binds beside the old one, which keeps serving until
 *   the change commits.
 * - A port we hold ourselves on another address (0.0.0.0 ↔ 127.0.0.1 on one port): the only case
 *   that still closes first, as Linux refuses the second bind; if the successor cannot bind, the
 *   old listener is bound again.
 * After the commit, replaced listeners retire: open connections close after their next response,
 * busy ones get the grace period.
 *
 * A listener that cannot be bound (the port is taken) does not fail a reload: its last good
 * listener, if any, keeps serving, the failure is returned for the reload to report, and
 * `unbound()` lists it until a later stage (the gateway's retry, or a reload) binds it. At start-up
 * it fails the whole stage instead, with everything undone.
 */
import type { Logger } from "winston";
import type { ListenerSpec } from "../config/resolve.js";
import type { BoundListener, PreparedListener } from "./listeners.js";
import { certificateKey } from "./tls-certs.js";

export interface Listener {
  network: string;
  spec: ListenerSpec;
  fingerprint: string;
  server: BoundListener;
}

export type Prepare = (network: string, spec: ListenerSpec) => PreparedListener;

/** A listener a stage could not bind; `error` names the network, address and port. */
export interface BindFailure {
  network: string;
  spec: ListenerSpec;
  error: Error;
}

/** A staged change: `commit` makes it the live set, retires what it replaced, and returns what is still unbound. */
export interface ListenerChange {
  commit(): BindFailure[];
}

/**
 * Every setting but the certificates counts: a field added to ListenerSpec later rebinds when it
 * changes, with no list to keep. Certificates (certificateKey) are swapped into the running server.
 */
export const fingerprint = (s: ListenerSpec): string => {
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

interface Adoption {
  name: string;
  spec: ListenerSpec;
  prepared: PreparedListener;
  holder: Listener;
}

export class ListenerSet {
  private readonly live = new Map<string, Listener>();
  /** What the last committed stage asked for, by network. */
  private desired = new Map<string, ListenerSpec>();

  constructor(
    private readonly prepare: Prepare,
    /** Workers of a group bind with SO_REUSEPORT, so each holds the port (runtime/workers/). */
    private readonly reusePort: boolean,
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
    this.desired = new Map();
    return all;
  }

  /** The listeners the last commit asked for, to stage again (the bind retry). */
  wanted(): Map<string, ListenerSpec> {
    return new Map(this.desired);
  }

  /** Asked-for listeners not serving as asked: none bound, or only the last good one. */
  unbound(): { network: string; spec: ListenerSpec }[] {
    const out: { network: string; spec: ListenerSpec }[] = [];
    for (const [network, spec] of this.desired) {
      const l = this.live.get(network);
      if (!l || l.fingerprint !== fingerprint(spec) || !l.server.address()) out.push({ network, spec });
    }
    return out;
  }

  /**
   * Binds what `wanted` needs beside the live listeners. A listener that cannot be bound is in the
   * commit's result (the rest goes ahead). `start`: the stage rejects instead, with everything as
   * it was. `retry`: a port we hold ourselves on another address is not taken over (that closes
   * the old listener for as long as the attempt lasts, on every attempt); a reload tries it again.
   */
  async stage(
    wanted: Map<string, ListenerSpec>,
    graceMs: number,
    mode: "start" | "reload" | "retry" = "reload",
  ): Promise<ListenerChange> {
    const strict = mode === "start";
    const opened = new Map<string, Listener>();
    const adoptions: Adoption[] = [];
    const takeovers: [string, ListenerSpec, Listener][] = [];
    // Old listeners closed early to free their port; `lost`: those that could not be bound again.
    const displaced: Listener[] = [];
    const lost = new Set<Listener>();
    const recertified: [Listener, ListenerSpec][] = [];
    const failed: BindFailure[] = [];
    const claimed = (l: Listener) => adoptions.some((a) => a.holder === l) || takeovers.some((t) => t[2] === l);

    const fail = (name: string, spec: ListenerSpec, e: unknown) => {
      const err = failure(name, spec, e);
      if (strict) throw err;
      failed.push({ network: name, spec, error: err });
    };
    const restore = async (old: Listener) => {
      try {
        old.server = await this.rebind(old.network, old.spec);
      } catch (e) {
        // Nothing else holds the network now: readiness reports it until it is bound.
        lost.add(old);
        this.logger.error("listener lost: its port could not be bound again", {
          network: old.network,
          address: old.spec.address,
          port: old.spec.port,
          error: (e as Error).message,
        });
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
        let prepared: PreparedListener;
        try {
          prepared = this.prepare(name, spec);
        } catch (e) {
          fail(name, spec, e);
          continue;
        }
        const same = this.sameSocket(spec, wanted, claimed);
        if (same) {
          adoptions.push({ name, spec, prepared, holder: same });
          continue;
        }
        try {
          opened.set(name, { network: name, spec, fingerprint: fp, server: await prepared.bind(this.reusePort) });
        } catch (e) {
          const holder = this.holderOf(spec, wanted);
          if (
            errorCode(e) === "EADDRINUSE" &&
            holder &&
            mode !== "retry" &&
            !adoptions.some((a) => a.holder === holder)
          )
            takeovers.push([name, spec, holder]);
          else fail(name, spec, e);
        }
      }
      // Last, the ports we hold ourselves on another address: the old listener goes, the new one binds in its place.
      for (const [name, spec, holder] of takeovers) {
        if (!displaced.includes(holder)) {
          displaced.push(holder);
          // The port is released at once; requests already on the old connections may finish.
          void holder.server.retire(graceMs);
        }
        try {
          opened.set(name, {
            network: name,
            spec,
            fingerprint: fingerprint(spec),
            server: await this.rebind(name, spec),
          });
        } catch (e) {
          fail(name, spec, e);
        }
      }
    } catch (e) {
      for (const a of adoptions) a.prepared.discard();
      await Promise.all([...opened.values()].map((l) => l.server.close(0)));
      for (const old of displaced) await restore(old);
      throw e;
    }
    // A displaced listener whose own network did not move elsewhere is its last good listener: back it comes.
    for (const old of displaced) if (wanted.has(old.network) && !opened.has(old.network)) await restore(old);

    return {
      commit: () => this.commit(wanted, graceMs, { opened, adoptions, displaced, lost, recertified, failed }),
    };
  }

  private commit(
    wanted: Map<string, ListenerSpec>,
    graceMs: number,
    c: {
      opened: Map<string, Listener>;
      adoptions: Adoption[];
      displaced: Listener[];
      lost: Set<Listener>;
      recertified: [Listener, ListenerSpec][];
      failed: BindFailure[];
    },
  ): BindFailure[] {
    const { opened, displaced, lost, failed } = c;
    // The sockets change hands first, synchronously: no connection can arrive in between.
    const adopted = new Map<string, Listener>();
    const handedOver = new Set<Listener>();
    for (const a of c.adoptions) {
      try {
        const server = a.prepared.adopt(a.holder.server);
        adopted.set(a.name, { network: a.name, spec: a.spec, fingerprint: fingerprint(a.spec), server });
        handedOver.add(a.holder);
      } catch (e) {
        // Not expected (the holder was listening a moment ago); its network keeps the old listener.
        a.prepared.discard();
        failed.push({ network: a.name, spec: a.spec, error: failure(a.name, a.spec, e) });
      }
    }
    const replaced = (name: string) => opened.has(name) || adopted.has(name);
    for (const [name, old] of [...this.live]) {
      const goes = !wanted.has(name) || replaced(name) || handedOver.has(old) || lost.has(old);
      if (!goes) continue;
      this.live.delete(name);
      // Requests already on the old connections may finish; new connections go to the new listener.
      if (!displaced.includes(old)) void old.server.retire(graceMs);
      this.logger.info("listener closed", { network: name, address: old.spec.address, port: old.spec.port });
    }
    for (const [l, spec] of c.recertified) {
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
    for (const [name, l] of [...opened, ...adopted]) {
      this.live.set(name, l);
      this.logger.info("listener started", {
        network: name,
        address: l.spec.address,
        port: l.server.address()?.port,
        ...(adopted.has(name) ? { socket: "taken over" } : {}),
      });
    }
    this.desired = new Map(wanted);
    return failed;
  }

  /**
   * The live listener, changing or going away in `wanted`, bound to exactly `spec`'s address and
   * (fixed) port: its socket can be handed over. A port-0 listener that changes moves to a new port.
   */
  private sameSocket(
    spec: ListenerSpec,
    wanted: Map<string, ListenerSpec>,
    claimed: (l: Listener) => boolean,
  ): Listener | undefined {
    if (spec.port === 0) return undefined;
    for (const l of this.live.values()) {
      const next = wanted.get(l.network);
      const staying = next !== undefined && fingerprint(next) === l.fingerprint;
      if (!staying && !claimed(l) && l.spec.address === spec.address && l.server.address()?.port === spec.port)
        return l;
    }
    return undefined;
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
  private async rebind(network: string, spec: ListenerSpec): Promise<BoundListener> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.prepare(network, spec).bind(this.reusePort);
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
