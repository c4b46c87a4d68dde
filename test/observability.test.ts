/**
 * The chart's alerts (charts/harmony/files/prometheus-rules.yaml) and Grafana dashboard
 * (files/grafana-dashboard.json) against what the code really exports: a running data plane's and
 * a running operator's /metrics (the operator reconciling against a real kube-apiserver, so its
 * labelled series exist). Every metric an expression names must be a series those endpoints
 * serve, and every label it matches on or groups by must be one of that series' labels or one
 * Prometheus adds when scraping. promtool (Debian's, via test/controlplane/lua.sh) checks the
 * syntax of every expression, and unit-tests each alert with input series that must fire it.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import {
  ROOT,
  baseConfig,
  freePort,
  http,
  proxyPipeline,
  startDataplane,
  startUpstream,
  tempDir,
  writeTree,
  eventually as poll,
  run as runCommand,
} from "../dataplane/test/helpers.js";

const FILES = join(ROOT, "charts/harmony/files");
const RULES_FILE = join(FILES, "prometheus-rules.yaml");
const DASHBOARD_FILE = join(FILES, "grafana-dashboard.json");
/** Labels Prometheus (and the Prometheus Operator's ServiceMonitor/PodMonitor) put on every scraped series. */
const TARGET_LABELS = new Set(["job", "instance", "namespace", "pod", "container", "service", "endpoint"]);

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
}

const rules = parse(readFileSync(RULES_FILE, "utf8")) as RuleFile;
const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, "utf8")) as Dashboard;

// ---- PromQL: the metric names and label names an expression uses --------------------------------

interface Uses {
  /** Metric name → label names its selectors match on. */
  metrics: Map<string, Set<string>>;
  /** Labels in by/without/on/ignoring/group_left/group_right clauses. */
  grouping: Set<string>;
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "by", "without"]);
const GROUPING = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
/** Aggregations: their grouping clause may stand between the name and the parenthesis. */
const AGGREGATIONS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);

type Token =
  | { t: "ident"; v: string }
  | { t: "string"; v: string }
  | { t: "selector"; labels: string[] }
  | { t: "range" }
  | { t: "number" }
  | { t: "punct"; v: string };

function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const readString = (): string => {
    const q = expr[i]!;
    let s = "";
    i++;
    while (i < expr.length && expr[i] !== q) {
      if (expr[i] === "\\" && q !== "`") i++;
      s += expr[i++];
    }
    if (i >= expr.length) throw new Error(`unterminated string in ${expr}`);
    i++;
    return s;
  };
  while (i < expr.length) {
    const ch = expr[i]!;
    if (/\s/.test(ch)) i++;
    else if (ch === "#") while (i < expr.length && expr[i] !== "\n") i++;
    else if (ch === '"' || ch === "'" || ch === "`") out.push({ t: "string", v: readString() });
    else if (ch === "{") {
      // Label matchers: name op "value", comma-separated; values are strings and may hold anything.
      i++;
      const labels: string[] = [];
      for (;;) {
        while (/[\s,]/.test(expr[i] ?? "")) i++;
        if (expr[i] === "}") break;
        const m = /^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*/.exec(expr.slice(i));
        if (!m) throw new Error(`bad label matcher at "${expr.slice(i, i + 20)}" in ${expr}`);
        labels.push(m[1]!);
        i += m[0].length;
        if (!/["'`]/.test(expr[i] ?? "")) throw new Error(`label ${m[1]} needs a string value in ${expr}`);
        readString();
      }
      i++;
      out.push({ t: "selector", labels });
    } else if (ch === "[") {
      const end = expr.indexOf("]", i);
      if (end < 0) throw new Error(`unterminated range in ${expr}`);
      i = end + 1;
      out.push({ t: "range" });
    } else if (/[0-9.]/.test(ch)) {
      const m = /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?)([smhdwy]|ms)*/i.exec(expr.slice(i))!;
      i += m[0].length;
      out.push({ t: "number" });
    } else if (/[a-zA-Z_:]/.test(ch)) {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))!;
      i += m[0].length;
      out.push({ t: "ident", v: m[0] });
    } else {
      out.push({ t: "punct", v: ch });
      i++;
    }
  }
  return out;
}

function uses(expr: string): Uses {
  const tokens = tokenize(expr);
  const metrics = new Map<string, Set<string>>();
  const grouping = new Set<string>();
  for (let k = 0; k < tokens.length; k++) {
    const tok = tokens[k]!;
    const next = tokens[k + 1];
    if (tok.t === "selector") throw new Error(`a selector without a metric name in ${expr}: name the metric`);
    if (tok.t !== "ident") continue;
    const lower = tok.v.toLowerCase();
    if (GROUPING.has(lower) && next?.t === "punct" && next.v === "(") {
      for (k += 2; k < tokens.length; k++) {
        const g = tokens[k]!;
        if (g.t === "punct" && g.v === ")") break;
        if (g.t === "ident") grouping.add(g.v);
      }
      continue;
    }
    if (GROUPING.has(lower) || KEYWORDS.has(lower) || AGGREGATIONS.has(lower)) continue;
    if (next?.t === "punct" && next.v === "(") continue; // a function or an aggregation
    const labels = metrics.get(tok.v) ?? new Set<string>();
    if (next?.t === "selector") {
      for (const l of next.labels) labels.add(l);
      k++;
    }
    metrics.set(tok.v, labels);
  }
  return { metrics, grouping };
}

/** Grafana's variables as Prometheus would see them once Grafana has substituted them. */
function grafanaToPromQL(expr: string): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b/g, "5m")
    .replace(/\$\{?__(range_s|interval_ms)\}?/g, "300")
    .replace(/\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?/g, ".*");
}

/** Every query the dashboard runs (panel targets and template variables), as PromQL. */
function dashboardQueries(): { where: string; expr: string; label?: string }[] {
  const out: { where: string; expr: string; label?: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? [])
        out.push({ where: `panel "${p.title}" ${t.refId}`, expr: grafanaToPromQL(t.expr) });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : (v.query as { query: string }).query;
    const m = /^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/s.exec(q);
    assert.ok(m, `variable ${v.name}: only label_values(<selector>, <label>) queries are checked: ${q}`);
    out.push({ where: `variable ${v.name}`, expr: grafanaToPromQL(m[1]!), label: m[2]! });
  }
  return out;
}

// ---- what the code exports ------------------------------------------------------------------

/** Series name → label names seen on its samples, from a /metrics page. */
function exported(text: string): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  const add = (name: string, labels: string[] = []) => {
    const s = series.get(name) ?? new Set<string>();
    for (const l of labels) s.add(l);
    series.set(name, s);
  };
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      const [, name, kind] = type as unknown as [string, string, string];
      // A family with no sample yet still says which series it will have.
      if (kind === "histogram")
        for (const s of ["_bucket", "_sum", "_count"]) add(name + s, s === "_bucket" ? ["le"] : []);
      else if (kind === "summary") for (const s of ["", "_sum", "_count"]) add(name + s, s === "" ? ["quantile"] : []);
      else add(name);
      continue;
    }
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s/.exec(line);
    assert.ok(m, `unparsable sample line: ${line}`);
    add(m[1]!, m[2] ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)].map((x) => x[1]!) : []);
  }
  return series;
}

let cp: ControlPlane;
let operator: ChildProcess | undefined;
let operatorLog = "";
let dataplaneMetrics = "";
let operatorMetrics = "";
let promtool = "";

const run = (cmd: string, args: string[]) => runCommand(cmd, args);

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> =>
  poll(what, fn, { timeoutMs, intervalMs: 250, context: () => `operator log:\n${operatorLog.slice(-3000)}` });

/**
 * A data plane that has served a 200, a 502 (dead backend), a 404 (no route) and a request over a
 * multi-target backend, then its /metrics.
 */
async function scrapeDataplane(): Promise<string> {
  const upstream = await startUpstream((_req, res) => res.end("ok"));
  const dead = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(
      proxyPipeline("api", "/api", upstream.url) +
        proxyPipeline("broken", "/broken", `http://127.0.0.1:${dead}`) +
        `
[targets.up]
connection.host = "127.0.0.1"
connection.port = ${upstream.port}

[targets.down]
connection.host = "127.0.0.1"
connection.port = ${dead}

[pipelines.pool]
networks = ["default"]
endpoints = ["pool_in"]
backends = ["pool"]

[endpoints.pool_in]
service = "http"
options = { path_prefix = "/pool" }

[backends.pool]
service = "http"
targets = ["up", "down"]
`,
    ),
  });
  const dp = await startDataplane(join(dir, "config.toml"));
  try {
    assert.equal((await http(dp.url("default", "/api/x"))).status, 200);
    assert.equal((await http(dp.url("default", "/broken/x"))).status, 502);
    assert.equal((await http(dp.url("default", "/nowhere"))).status, 404);
    assert.equal((await http(dp.url("default", "/pool/x"))).status, 200);
    const r = await http(dp.url("management", "/metrics"));
    assert.equal(r.status, 200);
    return r.text;
  } finally {
    await dp.stop();
    await upstream.close();
  }
}

/** The operator, leading and having reconciled a gateway, pipeline and endpoint, then its /metrics. */
async function scrapeOperator(): Promise<string> {
  const kubectl = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  await cp.installCrds();
  const port = await freePort();
  operator = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "operator/src/main.ts"),
      "--kubeconfig",
      cp.kubeconfig,
      "--lease-namespace",
      "default",
      "--health-port",
      String(port),
      "--manage-workloads",
      "false",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  operator.stdout!.setEncoding("utf8").on("data", (s: string) => (operatorLog += s));
  operator.stderr!.setEncoding("utf8").on("data", (s: string) => (operatorLog += s));
  const g = "harmony.runbeam.io/v1alpha1";
  const items = [
    {
      apiVersion: g,
      kind: "HarmonyGateway",
      metadata: { name: "edge", namespace: "default" },
      spec: { networks: [{ name: "web", port: 8080 }] },
    },
    {
      apiVersion: g,
      kind: "HarmonyEndpoint",
      metadata: { name: "api", namespace: "default" },
      spec: { service: "http", pathPrefix: "/api" },
    },
    {
      apiVersion: g,
      kind: "HarmonyPipeline",
      metadata: { name: "api", namespace: "default" },
      spec: {
        gatewayRef: { name: "edge" },
        endpoints: [{ name: "api" }],
        backends: [{ service: "http", url: "http://backend:8080" }],
      },
    },
  ];
  await kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  return eventually("operator metrics with reconciles of every kind", async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const kinds = ["gateway", "pipeline", "endpoint"].every((k) =>
      new RegExp(`harmony_operator_reconcile_total\\{[^}]*kind="${k}"`).test(text),
    );
    return kinds && /harmony_operator_leader 1/.test(text) && /harmony_operator_writes_total\{/.test(text)
      ? text
      : undefined;
  });
}

before(async () => {
  const tool = await run("bash", [join(ROOT, "test/controlplane/lua.sh"), "--print", "promtool"]);
  assert.equal(tool.code, 0, tool.stderr);
  promtool = tool.stdout.trim().split("\n").pop()!;
  cp = await startControlPlane();
  [dataplaneMetrics, operatorMetrics] = await Promise.all([scrapeDataplane(), scrapeOperator()]);
});

after(async () => {
  if (operator && operator.exitCode === null) {
    operator.kill("SIGTERM");
    await once(operator, "exit");
  }
  await cp?.stop();
});

test("the PromQL reader finds metric, matcher and grouping names, and nothing else", () => {
  const u = uses(
    'sum by (namespace, le) (rate(a_bucket{x="1,}", y=~"$v"}[5m] offset 1h)) / on(pod) group_left(node) b ' +
      "+ max without (w) (sum_of_things) " +
      'and ignoring(z) histogram_quantile(0.99, c) > bool 1e3 unless count_values("v", d{e!~"f"})',
  );
  assert.deepEqual([...u.metrics].map(([m, l]) => [m, [...l].sort()]).sort(), [
    ["a_bucket", ["x", "y"]],
    ["b", []],
    ["c", []],
    ["d", ["e"]],
    ["sum_of_things", []],
  ]);
  assert.deepEqual([...u.grouping].sort(), ["le", "namespace", "node", "pod", "w", "z"]);
  assert.throws(() => uses('{__name__="x"}'), /without a metric name/);
});

test("promtool: the rule file is valid and every dashboard query parses", async () => {
  const check = await run(promtool, ["check", "rules", RULES_FILE]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /SUCCESS: 7 rules found/);
  // Dashboard queries as recording rules: promtool parses each one with Prometheus's own parser.
  const queries = dashboardQueries();
  const file = join(tempDir(), "dashboard-rules.yaml");
  writeFileSync(
    file,
    stringify({
      groups: [{ name: "dashboard", rules: queries.map((q, i) => ({ record: `dashboard:query:${i}`, expr: q.expr })) }],
    }),
  );
  const dash = await run(promtool, ["check", "rules", file]);
  assert.equal(
    dash.code,
    0,
    `${dash.stdout}${dash.stderr}\n${queries.map((q, i) => `${i}: ${q.where}: ${q.expr}`).join("\n")}`,
  );
});

test("every metric and label the alerts use is exported by the data plane or the operator", () => {
  const series = new Map([...exported(dataplaneMetrics), ...exported(operatorMetrics)]);
  const alerts = rules.groups.flatMap((g) => g.rules);
  assert.deepEqual(alerts.map((r) => r.alert).sort(), [
    "HarmonyConfigReloadErrors",
    "HarmonyConfigReloadFailing",
    "HarmonyHighErrorRate",
    "HarmonyNetworkPeerImportExpired",
    "HarmonyOperatorNoLeader",
    "HarmonyOperatorReconcileErrors",
    "HarmonyUpstreamLatencyHigh",
  ]);
  const named = new Set<string>();
  for (const r of alerts) checkExpr(`alert ${r.alert}`, r.expr, series, named);
  // The four things the alerts must cover, by the metric each one reads.
  for (const m of [
    "harmony_config_last_reload_successful",
    "harmony_http_requests_total",
    "harmony_upstream_request_duration_seconds_bucket",
    "harmony_operator_reconcile_total",
  ])
    assert.ok(named.has(m), `no alert reads ${m}`);
});

test("every metric and label the dashboard queries is exported, and its variables are defined", () => {
  const series = new Map([...exported(dataplaneMetrics), ...exported(operatorMetrics)]);
  const named = new Set<string>();
  for (const q of dashboardQueries()) {
    const u = checkExpr(q.where, q.expr, series, named);
    if (q.label) {
      const [metric] = [...u.metrics.keys()];
      assert.ok(
        TARGET_LABELS.has(q.label) || series.get(metric!)?.has(q.label),
        `${q.where}: ${metric} has no label ${q.label}`,
      );
    }
  }
  // Each exported harmony_ family appears on the dashboard.
  const families = [...series.keys()].filter((n) => n.startsWith("harmony_") && !/_(sum|count)$/.test(n));
  const missing = families.filter(
    (f) => !named.has(f) && !named.has(f.replace(/_bucket$/, "_sum")) && !named.has(f.replace(/_bucket$/, "_count")),
  );
  assert.deepEqual(missing, [], "exported but on no panel");

  const raw = readFileSync(DASHBOARD_FILE, "utf8");
  const defined = new Set(dashboard.templating.list.map((v) => v.name));
  for (const [, name] of raw.matchAll(/\$\{?([a-zA-Z][a-zA-Z0-9_]*)\}?/g))
    assert.ok(defined.has(name!), `$${name} is used but not a dashboard variable`);
  const ids = new Set<number>();
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      assert.ok(!ids.has(p.id), `panel id ${p.id} twice`);
      ids.add(p.id);
      if (p.type !== "row")
        assert.equal(p.datasource?.uid, "${datasource}", `panel "${p.title}" has a fixed data source`);
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
});

function checkExpr(where: string, expr: string, series: Map<string, Set<string>>, named: Set<string>): Uses {
  const u = uses(expr);
  assert.ok(u.metrics.size > 0, `${where}: no metric in ${expr}`);
  const available = new Set(TARGET_LABELS);
  for (const [metric, labels] of u.metrics) {
    named.add(metric);
    const have = series.get(metric);
    assert.ok(have, `${where}: ${metric} is not exported by the data plane or the operator`);
    for (const l of have) available.add(l);
    for (const l of labels) assert.ok(TARGET_LABELS.has(l) || have.has(l), `${where}: ${metric} has no label ${l}`);
  }
  for (const l of u.grouping) assert.ok(available.has(l), `${where}: groups by ${l}, which none of its metrics has`);
  return u;
}

test("promtool test rules: each alert fires on the series that should fire it, and only those", async () => {
  // Annotations are templates over the firing series; promtool check rules has validated them, and
  // leaving them out here keeps the expectations to the labels that route an alert.
  const bare: RuleFile = {
    groups: rules.groups.map((g) => ({
      name: g.name,
      rules: g.rules.map((r) => ({ alert: r.alert, expr: r.expr, ...(r.for ? { for: r.for } : {}), labels: r.labels })),
    })),
  };
  const dir = tempDir();
  writeFileSync(join(dir, "rules.yaml"), stringify(bare));
  const dp = { namespace: "clinic", pod: "edge-harmony-0" };
  const op = { namespace: "harmony-system", pod: "harmony-0" };
  const sel = (name: string, labels: Record<string, string>) =>
    `${name}{${Object.entries(labels)
      .map(([k, v]) => `${k}="${v}"`)
      .join(",")}}`;
  const bucket = (le: string, values: string) => ({
    series: sel("harmony_upstream_request_duration_seconds_bucket", {
      ...dp,
      pipeline: "pacs",
      backend: "orthanc",
      le,
    }),
    values,
  });
  const unitTests = {
    rule_files: ["rules.yaml"],
    evaluation_interval: "1m",
    tests: [
      {
        interval: "1m",
        input_series: [
          { series: sel("harmony_config_last_reload_successful", dp), values: "1 1 0x20" },
          { series: sel("harmony_config_last_reload_successful", { ...dp, pod: "edge-harmony-1" }), values: "1x22" },
          {
            series: sel("harmony_config_reload_total", { ...dp, result: "failure", trigger: "file" }),
            values: "0 0 0+1x20",
          },
          {
            series: sel("harmony_config_reload_total", {
              ...dp,
              pod: "edge-harmony-1",
              result: "success",
              trigger: "file",
            }),
            values: "0+1x22",
          },
          // fhir: 10 % of 10 req/s fail; quiet: half fail, but at 1 request a minute.
          { series: sel("harmony_http_requests_total", { ...dp, pipeline: "fhir", status: "502" }), values: "0+60x30" },
          {
            series: sel("harmony_http_requests_total", { ...dp, pipeline: "fhir", status: "200" }),
            values: "0+540x30",
          },
          { series: sel("harmony_http_requests_total", { ...dp, pipeline: "quiet", status: "502" }), values: "0+1x30" },
          { series: sel("harmony_http_requests_total", { ...dp, pipeline: "quiet", status: "200" }), values: "0+1x30" },
          // Every backend response takes between 2.5 s and 5 s.
          bucket("1", "0x30"),
          bucket("2.5", "0x30"),
          bucket("5", "0+10x30"),
          bucket("+Inf", "0+10x30"),
          {
            series: sel("harmony_operator_reconcile_total", { ...op, kind: "gateway", result: "error" }),
            values: "0+5x30",
          },
          {
            series: sel("harmony_operator_reconcile_total", { ...op, kind: "gateway", result: "success" }),
            values: "0+5x30",
          },
          {
            series: sel("harmony_operator_reconcile_total", { ...op, kind: "pipeline", result: "success" }),
            values: "0+5x30",
          },
          { series: sel("harmony_operator_leader", op), values: "0x30" },
          { series: sel("harmony_operator_leader", { ...op, pod: "harmony-1" }), values: "0x30" },
          { series: sel("harmony_operator_leader", { namespace: "other", pod: "harmony-0" }), values: "1x30" },
        ],
        alert_rule_test: [
          { eval_time: "4m", alertname: "HarmonyConfigReloadFailing", exp_alerts: [] },
          {
            eval_time: "10m",
            alertname: "HarmonyConfigReloadFailing",
            exp_alerts: [{ exp_labels: { ...dp, severity: "warning" } }],
          },
          {
            eval_time: "17m",
            alertname: "HarmonyConfigReloadErrors",
            exp_alerts: [{ exp_labels: { ...dp, severity: "warning" } }],
          },
          { eval_time: "5m", alertname: "HarmonyHighErrorRate", exp_alerts: [] },
          {
            eval_time: "25m",
            alertname: "HarmonyHighErrorRate",
            exp_alerts: [{ exp_labels: { namespace: dp.namespace, pipeline: "fhir", severity: "critical" } }],
          },
          { eval_time: "10m", alertname: "HarmonyUpstreamLatencyHigh", exp_alerts: [] },
          {
            eval_time: "25m",
            alertname: "HarmonyUpstreamLatencyHigh",
            exp_alerts: [
              { exp_labels: { namespace: dp.namespace, pipeline: "pacs", backend: "orthanc", severity: "warning" } },
            ],
          },
          {
            eval_time: "25m",
            alertname: "HarmonyOperatorReconcileErrors",
            exp_alerts: [{ exp_labels: { namespace: op.namespace, kind: "gateway", severity: "warning" } }],
          },
          {
            eval_time: "10m",
            alertname: "HarmonyOperatorNoLeader",
            exp_alerts: [{ exp_labels: { namespace: op.namespace, severity: "critical" } }],
          },
        ],
      },
    ],
  };
  writeFileSync(join(dir, "tests.yaml"), stringify(unitTests));
  const r = await run(promtool, ["test", "rules", join(dir, "tests.yaml")]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /SUCCESS/);
});
