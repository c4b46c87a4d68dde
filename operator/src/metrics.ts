/** Operator metrics, named after controller-runtime's so existing dashboards read them. */
import client from "prom-client";

export class OperatorMetrics {
  readonly registry = new client.Registry();
  readonly reconciles = new client.Counter({
    name: "harmony_operator_reconcile_total",
    help: "Reconciles by kind and result (success, error).",
    labelNames: ["kind", "result"] as const,
    registers: [this.registry],
  });
  readonly reconcileTime = new client.Histogram({
    name: "harmony_operator_reconcile_time_seconds",
    help: "Time per reconcile, by kind.",
    labelNames: ["kind"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly queueDepth = new client.Gauge({
    name: "harmony_operator_workqueue_depth",
    help: "Keys waiting in the work queue.",
    registers: [this.registry],
  });
  readonly writes = new client.Counter({
    name: "harmony_operator_writes_total",
    help: "Writes to the API server by object kind (a steady state makes none).",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly peerImportsExpired = new client.Counter({
    name: "harmony_operator_network_peer_imports_expired_total",
    help: "Peer imports dropped because no fresher export verified within their validity, by network and peer.",
    labelNames: ["network", "peer"] as const,
    registers: [this.registry],
  });
  readonly leader = new client.Gauge({
    name: "harmony_operator_leader",
    help: "1 while this process holds the leader lease.",
    registers: [this.registry],
  });
  constructor() {
    // Event-loop lag sampled once a second, not every 10 ms (prom-client's default): that timer
    // woke an idle operator 100 times a second and, on Node 24 under load, cost it ~5 s of CPU a
    // minute with nothing to do (bench/operator-scale). The lag metric keeps its meaning.
    client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
  }
}
