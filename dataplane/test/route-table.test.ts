/**
 * The route table built in two steps (append, then one sort on first read) answers exactly as the
 * table that kept itself sorted on every add: a generated corpus of entries, duplicates among them,
 * gives the same precedence order, the same clash for each new entry and the same match for each
 * request. And a table of 20,000 routes, a gateway of 10,000 pipelines' worth, is sorted once.
 * (End-to-end precedence against the Gateway API model: gateway-routing.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RouteTable, type RouteEntry } from "../src/pipeline/route-table.js";
import { prng } from "./helpers.js";

type R = { name: string };

/** The old conflict(): the first entry, in precedence order, that `e` would duplicate. */
function clashes(e: RouteEntry<R>, x: RouteEntry<R>): boolean {
  return (
    x.prefix === e.prefix &&
    !!x.exact === !!e.exact &&
    (x.conditionsKey ?? "") === (e.conditionsKey ?? "") &&
    (x.precedence ?? 0) === (e.precedence ?? 0) &&
    (x.methods === "*" || e.methods === "*" || [...e.methods].some((m) => (x.methods as ReadonlySet<string>).has(m)))
  );
}

function corpus(n: number, seed: number): RouteEntry<R>[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const out: RouteEntry<R>[] = [];
  for (let i = 0; i < n; i++) {
    const host = pick([undefined, undefined, "a.example.com", "*.example.com"]);
    out.push({
      prefix: pick(["/", "/a", "/a/b", "/b", "/a/b/c", "/c"]),
      methods: pick<ReadonlySet<string> | "*">(["*", new Set(["GET"]), new Set(["POST", "PUT"])]),
      route: { name: `r${i}` },
      exact: rnd() < 0.2,
      precedence: pick([0, 0, 1]),
      ...(host ? { conditions: { hostname: host, headers: [], query: [] }, conditionsKey: `host ${host}` } : {}),
    });
  }
  return out;
}

test("built once and sorted on first read: each clash is the first in precedence order, matches as before", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const entries = corpus(150, seed);
    const table = new RouteTable<R>();
    let clashed = 0;
    entries.forEach((e, i) => {
      // The entries so far in precedence order (a table read at once), scanned as the old conflict() did.
      const sofar = new RouteTable<R>();
      for (const x of entries.slice(0, i)) sofar.add(x);
      const expected = sofar.list().find((x) => clashes(e, x));
      if (expected) clashed++;
      assert.equal(table.conflict(e)?.route.name, expected?.route.name, `seed ${seed}, clash for ${e.route.name}`);
      table.add(e);
    });
    assert.ok(clashed > 10, `the corpus has clashes (${clashed})`);
    // A request meets the first entry of the precedence order that it matches.
    const order = table.list();
    for (const path of ["/", "/a", "/a/b", "/a/b/c/d", "/b/x", "/c", "/d"])
      for (const method of ["GET", "POST", "DELETE"]) {
        const hit = order.find(
          (e) =>
            !e.conditions &&
            (e.exact ? path === e.prefix : e.prefix === "/" || path === e.prefix || path.startsWith(e.prefix + "/")) &&
            (e.methods === "*" || e.methods.has(method)),
        );
        const got = table.match(method, path);
        if (hit) assert.deepEqual(got, { route: hit.route }, `seed ${seed}: ${method} ${path}`);
        else assert.ok(!got || !("route" in got), `seed ${seed}: ${method} ${path} matched ${JSON.stringify(got)}`);
      }
  }
});

test("a table of 20,000 routes is sorted once, on its first read", () => {
  const table = new RouteTable<R>();
  for (let i = 0; i < 20_000; i++) {
    const e = { prefix: `/p${i}`, methods: "*" as const, route: { name: `r${i}` } };
    assert.equal(table.conflict(e), undefined);
    table.add(e);
  }
  assert.equal(table.sorts, 0, "no sort while building");
  assert.deepEqual(table.match("GET", "/p19999/x"), { route: { name: "r19999" } });
  assert.deepEqual(table.match("GET", "/p7/x"), { route: { name: "r7" } });
  assert.equal(table.sorts, 1);
});
