/**
 * Streams a request body onto the upstream socket with backpressure both ways: a full socket
 * pauses the body, its drain resumes it. A counted body (content-length) must deliver exactly that
 * many bytes (undici's RequestContentLengthMismatchError otherwise); one of unknown length goes
 * chunked.
 */
import type { Socket } from "node:net";
import { finished, type Readable } from "node:stream";
import { errors } from "undici";

/** Returns a function that detaches the writer (the response ended first, or the exchange failed). */
export function writeBody(
  socket: Socket,
  body: Readable,
  length: number | null,
  done: (err?: Error) => void,
): () => void {
  let written = 0;
  let over = false;
  const onData = (chunk: Buffer | string) => {
    if (over) return;
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (buf.length === 0) return; // an empty chunk would end a chunked body early
    written += buf.length;
    if (length !== null && written > length) return finish(new errors.RequestContentLengthMismatchError());
    let ok: boolean;
    if (length === null) {
      socket.cork();
      socket.write(`${buf.length.toString(16)}\r\n`, "latin1");
      socket.write(buf);
      ok = socket.write("\r\n", "latin1");
      socket.uncork();
    } else ok = socket.write(buf);
    if (!ok) body.pause();
  };
  const onDrain = () => {
    if (!over) body.resume();
  };
  const stopWatching = finished(body, { writable: false }, (err) => {
    if (over) return;
    if (err) return finish(err instanceof Error ? err : new errors.RequestAbortedError());
    if (length !== null && written !== length) return finish(new errors.RequestContentLengthMismatchError());
    if (length === null) socket.write("0\r\n\r\n", "latin1");
    finish();
  });
  function detach() {
    over = true;
    body.off("data", onData);
    socket.off("drain", onDrain);
    stopWatching();
  }
  function finish(err?: Error) {
    detach();
    done(err);
  }
  body.on("data", onData);
  socket.on("drain", onDrain);
  body.resume();
  return detach;
}
