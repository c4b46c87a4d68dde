/**
 * What the resolver tells a user, pinned down over a generated corpus (resolve-corpus.ts): every
 * example, the Harmony 0.13 fixture and a kitchen-sink tree, each mutated one line at a time and
 * in seeded pairs. For every mutant the problems (severity, file, line, column, key, message, in
 * order) and a digest of the resolved model must equal the committed recording, so a change in
 * the resolver that moves a problem to another line or key, rewords it, drops it, or loads
 * something else fails here.
 *
 * The recording is behaviour, not a wish: record again only for a change of behaviour that is
 * meant, and say so in the commit:
 *   RECORD_RESOLVE_CORPUS=1 node --import tsx --test dataplane/test/config-resolve-corpus.test.ts
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { ROOT } from "./helpers.js";
import { bases, mutants, outcome, type Outcome } from "./resolve-corpus.js";

const FIXTURE = join(ROOT, "dataplane/test/fixtures/resolve-corpus.json");
const RECORD = process.env.RECORD_RESOLVE_CORPUS === "1";

const corpus = bases().map((b) => ({
  name: b.name,
  outcomes: mutants(b).map((m) => outcome(`${b.name} ${m.label}`, b.main, m.files)),
}));

if (RECORD) {
  // One outcome a line: a re-recording's diff shows which mutants changed and how.
  const all = corpus.flatMap((b) => b.outcomes);
  writeFileSync(FIXTURE, `[\n${all.map((o) => JSON.stringify(o)).join(",\n")}\n]\n`);
}

const recorded = new Map((JSON.parse(readFileSync(FIXTURE, "utf8")) as Outcome[]).map((o) => [o.case, o]));

for (const { name, outcomes } of corpus) {
  test(`${name}: every mutant resolves with the recorded problems and model`, () => {
    const expected = [...recorded.values()].filter((o) => o.case.startsWith(`${name} `));
    assert.deepEqual(
      outcomes.map((o) => o.case),
      expected.map((o) => o.case),
      "the corpus generates the recorded mutants",
    );
    const differing = outcomes.filter((o) => !isDeepStrictEqual(o, recorded.get(o.case)));
    if (differing.length > 0) {
      const first = differing[0]!;
      assert.deepEqual(
        first,
        recorded.get(first.case),
        `${differing.length} of ${outcomes.length} mutants differ from the recording; the first: ${first.case}`,
      );
    }
  });
}

test("no mutant makes the resolver throw: a wrong or missing value is a problem in the list", () => {
  // 302 mutants threw a TypeError before the schema-refused values were pruned (resolve/prune.ts)
  // and the lookups below it took a missing type or path without throwing.
  const threw = corpus.flatMap((b) => b.outcomes).filter((o) => o.threw !== undefined);
  assert.deepEqual(
    threw.slice(0, 5).map((o) => `${o.case}: ${o.threw}`),
    [],
    `${threw.length} mutants threw`,
  );
  for (const o of corpus.flatMap((b) => b.outcomes)) {
    if (o.model === null)
      assert.ok(
        o.problems.some((p) => p[0] === "error"),
        `${o.case}: no model and no error`,
      );
  }
});

test("the corpus reaches every part of the resolver", () => {
  const all = corpus.flatMap((b) => b.outcomes);
  const messages = all.flatMap((o) => o.problems.map((p) => `${p[4]}: ${p[5]}`));
  assert.ok(all.length > 1000, `${all.length} mutants`);
  const missing: string[] = [];
  for (const expected of [
    /TOML syntax/,
    /proxy\.id \(0\.4 layout\) or proxy\.name/,
    /log_file_path: is required when log_to_file = true/,
    /harmony_networks\.h\..*: /,
    /enable_wireguard: WireGuard is not implemented/,
    /http3: HTTP\/3 is not available/,
    /harmony_network: \[harmony_networks\.zz_undefined\] is not defined/,
    /cert_path and key_path go together/,
    /cannot read the certificate or key/,
    /sni.*needs cert_path and key_path/,
    /sni\[\d\].*: certificate and key do not load/,
    /force_https: redirects apply to plain listeners only/,
    /cert_path, key_path and force_https are not used/,
    /bind_port: port \d+ is already used by/,
    /management\.network: network "zz_undefined" is not defined/,
    /management\.token_env: environment variable zz_undefined is not set/,
    /management\.base_path: must not be empty/,
    /dynamic modules are not supported/,
    /is not available in this build; registration ignored/,
    /options\.port: port \d+ is already used by/,
    /tcp_config: no pipeline on this network has a DIMSE endpoint/,
    /unknown middleware type "zz_undefined"/,
    /unknown endpoint service/,
    /unknown backend service/,
    /service: backend service "http3" is not available in this build/,
    /no networks: the pipeline is not served/,
    /no endpoints: the pipeline is not served/,
    /networks\[\d\]: network "zz_undefined" is not defined/,
    /has no HTTP listener \(endpoints/,
    /has only an HTTP\/3 listener/,
    /endpoint "zz_undefined" is not defined/,
    /backend "zz_undefined" is not defined/,
    /only the first backend is called/,
    /middleware "zz_undefined" is not defined \(no \[middleware\.zz_undefined\]/,
    /middleware\.left\[\d\]: middleware "zz_undefined" is not defined/,
    /needs a "jmix_builder" middleware in this pipeline/,
    /no enabled \[mesh\.\*\] lists "\w+" in its (ingress|egress)/,
    /an ingress needs urls/,
    /not served: it uses .*, not available in this build/,
    /options\..*: /,
    /target_ref|peer_ref|targets/,
    /not used by this build/,
  ]) {
    if (!messages.some((m) => expected.test(m))) missing.push(String(expected));
  }
  assert.deepEqual(missing, [], "messages no mutant reports");
});
