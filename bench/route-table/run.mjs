/**
 * What Gateway API matching (hostnames, headers, precedence) costs per request in the route table
 * (dataplane/src/pipeline/route-table.ts), paired against the table it replaced (longest prefix,
 * then method). Run: node bench/route-table/run.mjs (after `npm run build
 * --workspace dataplane`). Prints ns per match, median of 7 runs, old and new interleaved so
 * machine load hits both alike; compare the ratio, not the absolute numbers.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import { RouteTable } from "../../dataplane/dist/pipeline/route-table.js";
import { routeConditions } from "../../dataplane/dist/pipeline/route-conditions.js";

/** The commit before Gateway API matching (override: BASE=<rev>). */
const BASE = process.env.BASE ?? "6ca35de";
const DIST = fileURLToPath(new URL("../../dataplane/dist/pipeline/", import.meta.url));

/**
 * The route table before issue 19, compiled from git (the commit this work started from), so both
 * tables run as the same kind of code.
 */
async function oldRouteTable() {
  const src = execFileSync("git", ["show", `${BASE}:dataplane/src/pipeline/route-table.ts`], { encoding: "utf8" });
  const js = ts
    .transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    })
    .outputText.replace("./canonical-path.js", pathToFileURL(join(DIST, "canonical-path.js")).href);
  const file = join(mkdtempSync(join(tmpdir(), "route-table-old-")), "route-table.mjs");
  writeFileSync(file, js);
  return (await import(pathToFileURL(file).href)).RouteTable;
}
const OldRouteTable = await oldRouteTable();

const PREFIXES = ["/fhir", "/dicomweb", "/jmix", "/api/v1", "/api/v2", "/echo", "/files", "/admin-ui", "/wado", "/"];
const plain = (T) => {
  const t = new T();
  PREFIXES.forEach((prefix, i) => t.add({ prefix, methods: "*", route: i }));
  return t;
};
/** Ten host-routed entries (Gateway API HTTPRoutes) in front of the same ten plain ones. */
const withHosts = () => {
  const t = plain(RouteTable);
  for (let i = 0; i < 10; i++)
    for (const v of routeConditions({
      prefix: "/api",
      methods: "*",
      hostnames: [`svc${i}.example.com`],
      headers: i % 2 ? [{ name: "x-version", value: "two" }] : [],
    }))
      t.add({ prefix: "/api", methods: "*", route: 100 + i, ...v });
  return t;
};

const REQ = { headers: { host: "svc7.example.com:8443", "x-version": "two", accept: "*/*" }, search: "" };
const NOHOST = { headers: { host: "gw.example.com" }, search: "" };
const PATH = "/fhir/Patient/123/_history/4";

function nsPerCall(f) {
  const n = 1_000_000;
  let sink = 0;
  for (let i = 0; i < n / 10; i++) sink += f() ? 1 : 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += f() ? 1 : 0;
  if (sink < 0) process.stdout.write(`${sink}\n`);
  return Number(process.hrtime.bigint() - t0) / n;
}
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const oldT = plain(OldRouteTable);
const newT = plain(RouteTable);
const hostT = withHosts();
const cases = {
  "10 plain routes, FHIR path: old table": () => oldT.match("GET", PATH),
  "10 plain routes, FHIR path: new table": () => newT.match("GET", PATH, NOHOST),
  "+10 host routes, request for a plain route": () => hostT.match("GET", PATH, NOHOST),
  "+10 host routes, request for svc7 (host + header)": () => hostT.match("GET", "/api/x", REQ),
};
const runs = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
const order = Object.entries(cases);
for (let r = 0; r < 7; r++) {
  // Each round starts with another case, so warm-up and JIT order favour none.
  for (let k = 0; k < order.length; k++) {
    const [name, f] = order[(k + r) % order.length];
    runs[name].push(nsPerCall(f));
  }
}
const base = median([...runs["10 plain routes, FHIR path: old table"]]);
process.stdout.write("| case | ns per match (median of 7) | vs old table |\n| --- | --- | --- |\n");
for (const [k, xs] of Object.entries(runs)) {
  const m = median([...xs]);
  process.stdout.write(`| ${k} | ${m.toFixed(0)} | ${(m / base).toFixed(2)}× |\n`);
}
