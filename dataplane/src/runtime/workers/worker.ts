/**
 * One worker of a group (proxy.workers > 1): a whole Gateway on the same config, binding the HTTP
 * listeners with SO_REUSEPORT beside its siblings. It reloads only when the primary says so (the
 * primary watches the files and the API once for the group) and sends its management questions
 * (readiness, metrics, reload, the worker list) to the primary, which answers for the group.
 */
import { AggregatorRegistry } from "prom-client";
import { Gateway, type GatewayOptions, type GroupHooks } from "../gateway.js";
import { Calls, fromWire, isHarmony, type Ask, type ToPrimary, type ToWorker, type WorkerState } from "./ipc.js";

/** How long a management request waits for the group (the primary asks every worker in turn). */
const ASK_TIMEOUT_MS = 30_000;

function send(m: ToPrimary): void {
  process.send?.(m);
}

export async function runWorker(opts: Omit<GatewayOptions, "group" | "watch" | "kubeSource">): Promise<number> {
  const slot = Number(process.env.HARMONY_WORKER_SLOT ?? "0");
  const { logger } = opts;
  // Every line this process logs says which worker it came from.
  logger.defaultMeta = { ...(logger.defaultMeta as object), worker: slot + 1 };
  // prom-client answers the primary's metrics requests with this registry (its cluster listener).
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([opts.metrics.registry]);

  const calls = new Calls();
  let ports: Record<string, number> = {};
  const ask = <T>(what: Ask, trigger?: string) =>
    calls.call<T>(
      "primary",
      (id) => send({ t: "harmony:ask", id, what, ...(trigger ? { trigger } : {}) }),
      ASK_TIMEOUT_MS,
    );
  const group: GroupHooks = {
    dimse: slot === 0,
    ports: () => ports,
    reload: (trigger) => ask("reload", trigger),
    readiness: () => ask("readiness"),
    metrics: () => ask("metrics"),
    group: () => ask("group"),
  };
  const gateway = new Gateway({ ...opts, watch: false, group });
  const state = (): WorkerState => ({ ...gateway.workerState(), ports: gateway.boundPorts() });

  const init = new Promise<Extract<ToWorker, { t: "harmony:init" }>>((resolve) => {
    process.on("message", (m: unknown) => {
      if (!isHarmony<ToWorker>(m)) return;
      switch (m.t) {
        case "harmony:init":
          resolve(m);
          return;
        case "harmony:answer":
          calls.answer(m);
          return;
        case "harmony:state":
          send({ t: "harmony:answer", id: m.id, value: state() });
          return;
        case "harmony:reload":
          ports = m.ports;
          gateway.reloadWith(m.trigger, fromWire(m.overlay)).then(
            (result) => send({ t: "harmony:answer", id: m.id, value: { result, state: state() } }),
            (e: unknown) => send({ t: "harmony:answer", id: m.id, error: (e as Error).message }),
          );
          return;
      }
    });
  });
  send({ t: "harmony:hello" });
  const first = await init;
  ports = first.ports;
  try {
    await gateway.start(fromWire(first.overlay));
  } catch (e) {
    process.stderr.write(`harmony-dataplane: worker ${slot + 1}: ${(e as Error).message}\n`);
    await gateway.shutdown();
    return 1;
  }
  send({ t: "harmony:started", state: state() });

  // SIGHUP reaches a worker only when sent to it (or to the process group): the group reloads.
  process.on("SIGHUP", () => void group.reload("sighup").catch(() => undefined));
  return new Promise<number>((done) => {
    let signalled = false;
    const stop = (signal: string) => {
      if (signalled) return;
      signalled = true;
      logger.info("draining", { signal });
      void gateway.shutdown().then(() => done(0));
    };
    // The primary sends SIGTERM; Ctrl-C in a terminal sends SIGINT to every process of the group.
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
