/**
 * Raw-socket exchanges with a data plane's plain HTTP/1.1 listener, for the tests that compare the
 * llhttp lane with node:http byte for byte (h1-server-lane, h1-server-heads).
 */
import { connect } from "node:net";
import { http, sleep, type Dataplane } from "./helpers.js";

/**
 * Writes `parts` (strings as latin1, so each char is one byte; a number pauses that many ms) and
 * collects every byte until the server closes.
 */
export function exchange(port: number, parts: (string | Buffer | number)[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1", noDelay: true });
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(got).toString("latin1"))}`),
      );
    }, timeoutMs);
    s.on("data", (c: Buffer) => got.push(c));
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got).toString("latin1"));
    });
    s.on("connect", async () => {
      for (const p of parts) {
        if (typeof p === "number") await sleep(p);
        else if (typeof p === "string") s.write(p, "latin1");
        else s.write(p);
      }
    });
  });
}

/** Connections the lane handed to node:http so far (`harmony_http1_lane_handoffs_total`). */
export async function handoffs(dp: Dataplane): Promise<number> {
  const r = await http(dp.url("management", "/metrics"));
  const m = /^harmony_http1_lane_handoffs_total\{network="default"\} (\d+)$/m.exec(r.text);
  return m ? Number(m[1]) : 0;
}
