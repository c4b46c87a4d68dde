/** A TCP relay in front of the apiserver (TLS passes through) that a test can cut, as a network partition. */
import { createServer, connect, type Server, type Socket } from "node:net";
import { once } from "node:events";

export interface Relay {
  port: number;
  /** On: drops every connection and refuses new ones; off: relays again. */
  cut(on: boolean): void;
  close(): Promise<void>;
}

export async function startRelay(target: URL): Promise<Relay> {
  const sockets = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((client) => {
    if (cut) return client.destroy();
    const up = connect(Number(target.port), target.hostname);
    for (const s of [client, up]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.pipe(up).pipe(client);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as { port: number }).port,
    cut(on) {
      cut = on;
      if (on) for (const s of sockets) s.destroy();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
