/**
 * The hostile suite's shared parts: raw-socket exchanges a polite client library would refuse to
 * send, and the check every attack ends with — the real data plane process is still alive and still
 * answers an ordinary request on the same listener.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { http, type Dataplane } from "../../dataplane/test/helpers.js";

export interface RawReply {
  /** Everything the server sent before closing or before the timeout. */
  text: string;
  /** The status code of the first response line, or undefined when none arrived. */
  status: number | undefined;
  /** True when the server closed the connection (rather than the timeout ending the wait). */
  closed: boolean;
}

/**
 * Writes `chunks` to 127.0.0.1:`port` (a number pauses that many milliseconds), then collects the
 * reply until the server closes or `timeoutMs` passes.
 */
export function rawExchange(port: number, chunks: (string | Buffer | number)[], timeoutMs = 3000): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const got: Buffer[] = [];
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(got).toString("latin1");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : undefined, closed });
    };
    const timer = setTimeout(finish, timeoutMs);
    sock.on("data", (c: Buffer) => got.push(c));
    sock.on("end", () => {
      closed = true;
      finish();
    });
    sock.on("close", () => {
      closed = true;
      finish();
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      // A reset after the server answered is a close, not a failure of the test.
      if (e.code === "ECONNRESET" || e.code === "EPIPE") {
        closed = true;
        return finish();
      }
      clearTimeout(timer);
      reject(e);
    });
    sock.once("connect", () => {
      void (async () => {
        for (const c of chunks) {
          if (typeof c === "number") await new Promise((r) => setTimeout(r, c));
          else if (!sock.destroyed) sock.write(c);
        }
      })();
    });
  });
}

/** After an attack: the process has not exited and `path` on `network` still answers `status`. */
export async function assertStillServes(dp: Dataplane, network: string, path: string, status = 200): Promise<void> {
  assert.equal(dp.proc.exitCode, null, `data plane exited (code ${String(dp.proc.exitCode)}):\n${dp.stderr()}`);
  assert.equal(dp.proc.signalCode, null, `data plane was killed by ${String(dp.proc.signalCode)}`);
  const r = await http(dp.url(network, path), { agent: false });
  assert.equal(r.status, status, `after the attack ${path} answered ${r.status}: ${r.text.slice(0, 300)}`);
}

/** Open file descriptors of a process (Linux). */
export async function fdCount(pid: number): Promise<number> {
  const { readdir } = await import("node:fs/promises");
  return (await readdir(`/proc/${pid}/fd`)).length;
}
