/** The Gateway API translator's pure parts: names, hostnames, listeners, attachment, weights, precedence. */
import { test } from "node:test";
import assert from "node:assert/strict";
import TOML from "@iarna/toml";
import { childBase } from "../src/gatewayapi/names.js";
import { intersect, within } from "../src/gatewayapi/hostnames.js";
import { planListeners } from "../src/gatewayapi/listeners.js";
import { attach } from "../src/gatewayapi/attach.js";
import { renderGateway } from "../src/gatewayapi/render.js";
import { gatewayWorkload } from "../src/gatewayapi/workload.js";
import { deploymentFor, serviceFor, configMapName } from "../src/translator/workload.js";
import type { Gateway, HTTPRoute } from "../src/api/gateway-api.js";

type Table = Record<string, unknown>;

const gw = (listeners: Gateway["spec"]["listeners"], name = "edge"): Gateway => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "Gateway",
  metadata: { name, namespace: "ns", uid: "u1", generation: 1 },
  spec: { gatewayClassName: "harmony", listeners },
});
const route = (name: string, spec: HTTPRoute["spec"], created = "2026-01-01T00:00:00Z", ns = "ns"): HTTPRoute => ({
  metadata: { name, namespace: ns, creationTimestamp: created as never },
  spec,
});

test("a 253-character Gateway name gives valid, distinct, bounded child names", () => {
  const long = "a".repeat(253);
  const other = "a".repeat(252) + "b";
  assert.equal(childBase("edge"), "edge");
  assert.ok(childBase(long).length <= 40 && /^[a-z]([a-z0-9-]*[a-z0-9])?$/.test(childBase(long)));
  assert.notEqual(childBase(long), childBase(other));
  assert.match(childBase("my.gateway"), /^gw-my-gateway-[0-9a-f]{8}$/);
  const w = gatewayWorkload(gw([{ name: "http", port: 80, protocol: "HTTP" }], long));
  assert.ok(configMapName(w).length <= 63);
  const svc = serviceFor(w) as {
    metadata: { name: string; labels: Record<string, string> };
    spec: { ports: unknown[] };
  };
  assert.ok(svc.metadata.name.length <= 63);
  assert.ok(Object.values(svc.metadata.labels).every((v) => v.length <= 63));
  // Port 80 is served on 10080 in the pod (no NET_BIND_SERVICE), 80 on the Service.
  assert.deepEqual(svc.spec.ports, [{ name: "l80", port: 80, targetPort: 10080, protocol: "TCP" }]);
  const d = deploymentFor(w) as { metadata: { ownerReferences: { kind: string; uid: string }[] } };
  assert.deepEqual(
    d.metadata.ownerReferences.map((o) => [o.kind, o.uid]),
    [["Gateway", "u1"]],
  );
});

test("hostname wildcards and intersection follow the Gateway API", () => {
  assert.ok(within("foo.example.com", "*.example.com"));
  assert.ok(within("a.b.example.com", "*.example.com"));
  assert.ok(!within("example.com", "*.example.com"));
  assert.ok(within("*.a.example.com", "*.example.com"));
  assert.deepEqual(intersect(undefined, undefined), undefined);
  assert.deepEqual(intersect("*.example.com", undefined), ["*.example.com"]);
  assert.deepEqual(intersect("*.example.com", ["foo.example.com", "bar.org"]), ["foo.example.com"]);
  assert.deepEqual(intersect("foo.example.com", ["*.example.com"]), ["foo.example.com"]);
  assert.deepEqual(intersect("foo.example.com", ["bar.example.com"]), []);
});

test("listeners: unsupported protocol, invalid route kinds, missing certificate, conflicts", () => {
  const plans = planListeners(
    gw([
      {
        name: "a",
        port: 80,
        protocol: "HTTP",
        allowedRoutes: { kinds: [{ kind: "HTTPRoute" }, { kind: "TCPRoute" }] },
      },
      { name: "b", port: 81, protocol: "UDP" },
      { name: "c", port: 443, protocol: "HTTPS", tls: { certificateRefs: [{ name: "missing" }] } },
      { name: "d", port: 80, protocol: "HTTP" },
    ]),
    () => undefined,
    [],
  );
  const c = (i: number, type: string) => plans[i]!.conditions.find((x) => x.type === type);
  assert.equal(c(0, "ResolvedRefs")?.reason, "InvalidRouteKinds");
  assert.deepEqual(plans[0]!.supportedKinds, [{ group: "gateway.networking.k8s.io", kind: "HTTPRoute" }]);
  assert.equal(c(1, "Accepted")?.reason, "UnsupportedProtocol");
  assert.equal(c(2, "ResolvedRefs")?.reason, "InvalidCertificateRef");
  assert.equal(plans[2]!.acceptsRoutes, true, "routes attach even while the certificate is missing");
  assert.equal(plans[2]!.served, false);
  assert.equal(c(3, "Conflicted")?.reason, "HostnameConflict");
});

test("attachment: sectionName, namespaces and hostnames give the spec's reasons", () => {
  const g = gw([
    { name: "foo", port: 80, protocol: "HTTP", hostname: "foo.example.com" },
    { name: "all", port: 8080, protocol: "HTTP", allowedRoutes: { namespaces: { from: "All" } } },
  ]);
  const plans = planListeners(g, () => undefined, []);
  const labels = () => ({});
  const r = route("r", { hostnames: ["bar.example.com"] });
  assert.equal(attach(r, { name: "edge", sectionName: "nope" }, g, plans, labels).accepted.reason, "NoMatchingParent");
  assert.equal(
    attach(r, { name: "edge", sectionName: "foo" }, g, plans, labels).accepted.reason,
    "NoMatchingListenerHostname",
  );
  const other = route("r", {}, undefined, "elsewhere");
  assert.equal(
    attach(other, { name: "edge", namespace: "ns", sectionName: "foo" }, g, plans, labels).accepted.reason,
    "NotAllowedByListeners",
  );
  const ok = attach(other, { name: "edge", namespace: "ns" }, g, plans, labels);
  assert.equal(ok.accepted.status, "True");
  assert.deepEqual(
    ok.listeners.map((l) => l.plan.listener.name),
    ["all"],
  );
});

test("render: weights keep each backendRef's share across pods; precedence encodes route age and rule order", () => {
  const g = gw([{ name: "http", port: 80, protocol: "HTTP" }]);
  const plans = planListeners(g, () => undefined, []);
  const svc = (ports: number) => ({ spec: { ports: [{ name: "http", port: ports }] } });
  const slices: Record<string, string[]> = { a: ["10.0.0.1", "10.0.0.2", "10.0.0.3"], b: ["10.0.1.1"] };
  const older = route("older", {
    parentRefs: [{ name: "edge" }],
    rules: [
      {
        backendRefs: [
          { name: "a", port: 8080, weight: 70 },
          { name: "b", port: 8080, weight: 30 },
          { name: "missing", port: 8080, weight: 0 },
        ],
      },
    ],
  });
  const newer = route(
    "newer",
    { parentRefs: [{ name: "edge" }], rules: [{ matches: [{ path: { type: "Exact", value: "/x" } }] }] },
    "2026-02-01T00:00:00Z",
  );
  const out = renderGateway({
    gw: g,
    plans,
    routes: [newer, older].map((r) => ({
      route: r,
      attachments: [attach(r, r.spec.parentRefs![0]!, g, plans, () => ({}))],
    })),
    backends: {
      service: (_ns, n) => (n in slices ? svc(8080) : undefined),
      slices: (_ns, n) => [
        { addressType: "IPv4", ports: [{ name: "http", port: 9000 }], endpoints: [{ addresses: slices[n] ?? [] }] },
      ],
      grants: [],
    },
    pipelines: () => undefined,
    secrets: () => undefined,
    bindAddress: "0.0.0.0",
    managementPort: 9090,
  });
  const doc = TOML.parse(out.files["config.toml"]!) as {
    targets: Record<string, { weight?: number; static_status?: number; connection?: { host: string } }>;
    endpoints: Record<string, { options: { precedence?: number; path_match?: string } }>;
    backends: Record<string, { service: string }>;
  };
  const weights = Object.values(doc.targets).map((t) => [
    t.connection?.host ?? `static ${t.static_status}`,
    t.weight ?? 1,
  ]);
  // 70 over 3 pods and 30 over 1: scaled by 3 (210, 90), divided by the gcd 10 → 7 per pod of a,
  // 9 for b's: 21:9 = 70:30.
  assert.deepEqual(weights, [
    ["10.0.0.1", 7],
    ["10.0.0.2", 7],
    ["10.0.0.3", 7],
    ["10.0.1.1", 9],
    ["static 500", 0],
  ]);
  assert.equal(doc.endpoints["ns.older.r0.l80.m0"]!.options.precedence, undefined, "the oldest route's first rule");
  assert.equal(doc.endpoints["ns.newer.r0.l80.m0"]!.options.precedence, 1000);
  assert.equal(doc.endpoints["ns.newer.r0.l80.m0"]!.options.path_match, "exact");
  assert.equal(doc.backends["ns.newer.r0.l80.backend"]!.service, "static", "no backendRefs: 500");
  const method = renderGateway({
    gw: g,
    plans,
    routes: [route("m", { parentRefs: [{ name: "edge" }], rules: [{ matches: [{ method: "POST" }] }] })].map((r) => ({
      route: r,
      attachments: [attach(r, r.spec.parentRefs![0]!, g, plans, () => ({}))],
    })),
    backends: { service: () => undefined, slices: () => [], grants: [] },
    pipelines: () => undefined,
    secrets: () => undefined,
    bindAddress: "0.0.0.0",
    managementPort: 9090,
  });
  const m = (TOML.parse(method.files["config.toml"]!) as { endpoints: Record<string, { options: Table }> }).endpoints;
  assert.deepEqual(m["ns.m.r0.l80.m0"]!.options, {
    path_prefix: "/",
    methods: ["POST"],
    method_mismatch_status: 404,
  });
});
