/**
 * The translator's part of files from Kubernetes: fileOptions rendered as files (Secret content
 * only in the Secret), refused and unresolved entries in spec paths, TLS certificateRefs planned
 * per network, and the admission check over the same render.
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { render, type RenderResult, type SecretRevision } from "../src/translator/render.js";
import { validateResource } from "../src/admission/validate.js";
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline } from "../src/api/v1alpha1.js";
import { tempDir } from "../../dataplane/test/helpers.js";

const API = "harmony.runbeam.io/v1alpha1" as const;
const pki = tempDir("harmony-pki-");
const pem = (f: string) => readFileSync(join(pki, f));

before(() => {
  const sh = (cmd: string) => {
    const r = spawnSync("bash", ["-c", cmd], { cwd: pki, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  };
  for (const n of ["a", "b"]) {
    sh(
      `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=${n}" -keyout ${n}.key -out ${n}.crt 2>/dev/null`,
    );
  }
});

const gateway = (networks: HarmonyGateway["spec"]["networks"]): HarmonyGateway => ({
  apiVersion: API,
  kind: "HarmonyGateway",
  metadata: { name: "gw", namespace: "ns" },
  spec: { networks, management: { port: 9090 } },
});
const endpoint: HarmonyEndpoint = {
  apiVersion: API,
  kind: "HarmonyEndpoint",
  metadata: { name: "api", namespace: "ns" },
  spec: { service: "http", pathPrefix: "/api" },
};
const pipeline = (name: string, spec: Partial<HarmonyPipeline["spec"]>): HarmonyPipeline => ({
  apiVersion: API,
  kind: "HarmonyPipeline",
  metadata: { name, namespace: "ns" },
  spec: {
    gatewayRef: { name: "gw" },
    endpoints: [{ name: "api" }],
    backends: [{ service: "http", url: "http://127.0.0.1:1" }],
    ...spec,
  },
});
const web = [{ name: "web", port: 8080 }];
const publicPem = generateKeyPairSync("ec", { namedCurve: "P-256" })
  .publicKey.export({ type: "spki", format: "pem" })
  .toString();
const configMaps = (ns: string, n: string) =>
  ns === "ns" && n === "keys" ? { data: { "public.pem": publicPem, junk: "not a key" }, revision: "u/7" } : undefined;
const secrets = (ns: string, n: string): SecretRevision | undefined => {
  if (ns !== "ns") return undefined;
  if (n === "ca") return { data: { "ca.crt": pem("a.crt") }, revision: "u/3" };
  if (n === "tls-a") return { data: { "tls.crt": pem("a.crt"), "tls.key": pem("a.key") }, revision: "u/4" };
  if (n === "tls-mixed") return { data: { "tls.crt": pem("a.crt"), "tls.key": pem("b.key") }, revision: "u/5" };
  return undefined;
};
const run = (gw: HarmonyGateway, ps: HarmonyPipeline[]) => render(gw, ps, () => endpoint, secrets, configMaps);
const outcome = (r: RenderResult, name: string) => r.pipelines.find((p) => p.name === name)!;

const jwt = (fileOptions: NonNullable<HarmonyPipeline["spec"]["backends"][0]["fileOptions"]>) =>
  pipeline("p", { middleware: [{ name: "auth", type: "jwt_auth", fileOptions }] });

test("fileOptions: ConfigMap and inline content in the ConfigMap, Secret content only in the Secret", () => {
  const r = run(gateway(web), [
    pipeline("p", {
      middleware: [
        {
          name: "auth",
          type: "jwt_auth",
          fileOptions: [{ option: "public_key_path", configMapKeyRef: { name: "keys", key: "public.pem" } }],
        },
        {
          name: "shape",
          type: "transform",
          fileOptions: [{ option: "spec_path", inline: [{ operation: "shift", spec: { a: "b" } }] }],
        },
      ],
      backends: [
        {
          service: "http",
          url: "https://127.0.0.1:1",
          fileOptions: [{ option: "tls.ca_path", secretKeyRef: { name: "ca", key: "ca.crt" } }],
        },
      ],
    }),
  ]);
  assert.equal(outcome(r, "p").programmed, true, JSON.stringify(outcome(r, "p")));
  assert.equal(r.files["ns.p.middleware.auth.file.public_key_path"], publicPem);
  assert.deepEqual(JSON.parse(r.files["ns.p.middleware.shape.file.spec_path"]!), [
    { operation: "shift", spec: { a: "b" } },
  ]);
  assert.deepEqual(r.secrets["ns.p.backend.file.tls.ca_path"], pem("a.crt"));
  assert.ok(!Object.values(r.files).join("").includes("BEGIN CERTIFICATE"), "Secret content in the ConfigMap");
  const toml = r.files["pipeline.ns.p.toml"]!;
  // Relative to the config directory (spec_path: to its transforms directory), so the same tree works anywhere.
  assert.match(toml, /public_key_path = "ns\.p\.middleware\.auth\.file\.public_key_path"/);
  assert.match(toml, /spec_path = "\.\.\/ns\.p\.middleware\.shape\.file\.spec_path"/);
  assert.match(toml, /ca_path = "\.\.\/secrets\/ns\.p\.backend\.file\.tls\.ca_path"/);
});

test("fileOptions: missing refs are ResolvedRefs, unusable content and misspelt options Accepted=False, in spec paths", () => {
  const missing = outcome(
    run(gateway(web), [jwt([{ option: "public_key_path", configMapKeyRef: { name: "nope", key: "k" } }])]),
    "p",
  );
  assert.deepEqual(missing.failure, {
    condition: "ResolvedRefs",
    reason: "ConfigMapNotFound",
    message: "spec.middleware[0].fileOptions[0].configMapKeyRef: no ConfigMap ns/nope",
  });
  const noKey = outcome(
    run(gateway(web), [jwt([{ option: "public_key_path", secretKeyRef: { name: "ca", key: "nope" } }])]),
    "p",
  );
  assert.equal(
    noKey.failure?.message,
    'spec.middleware[0].fileOptions[0].secretKeyRef: key "nope" not in Secret ns/ca',
  );
  const junk = outcome(
    run(gateway(web), [jwt([{ option: "public_key_path", configMapKeyRef: { name: "keys", key: "junk" } }])]),
    "p",
  );
  assert.equal(junk.failure?.condition, "Accepted");
  assert.match(junk.failure?.message ?? "", /^spec\.middleware\[0\]\.fileOptions\[0\]: /);
  const typo = outcome(
    run(gateway(web), [jwt([{ option: "public_key_pth", configMapKeyRef: { name: "keys", key: "public.pem" } }])]),
    "p",
  );
  assert.equal(typo.failure?.reason, "InvalidOptions");
  assert.match(
    typo.failure?.message ?? "",
    /spec\.middleware\[0\]\.fileOptions\[0\]\.option: unknown option; did you mean "public_key_path"\?/,
  );
  const privateFromConfigMap = outcome(
    run(gateway(web), [
      pipeline("p", {
        backends: [
          {
            service: "http",
            url: "https://x",
            fileOptions: [{ option: "tls.key_path", configMapKeyRef: { name: "keys", key: "public.pem" } }],
          },
        ],
      }),
    ]),
    "p",
  );
  assert.match(privateFromConfigMap.failure?.message ?? "", /must come from a secretKeyRef/);
  const passwordFromConfigMap = outcome(
    run(gateway(web), [
      pipeline("p", {
        middleware: [
          {
            name: "auth",
            type: "basic_auth",
            fileOptions: [{ option: "password_file", configMapKeyRef: { name: "keys", key: "junk" } }],
          },
        ],
      }),
    ]),
    "p",
  );
  assert.match(passwordFromConfigMap.failure?.message ?? "", /\*_file\) must come from a secretKeyRef/);
  const inlineKey = outcome(
    run(gateway(web), [
      pipeline("p", {
        backends: [
          {
            service: "http",
            url: "https://x",
            fileOptions: [{ option: "tls.key_path", inline: pem("a.key").toString() }],
          },
        ],
      }),
    ]),
    "p",
  );
  assert.match(
    inlineKey.failure?.message ?? "",
    /fileOptions\[0\]\.inline: a private key .* must come from a secretKeyRef/,
  );
  const two = outcome(
    run(gateway(web), [
      jwt([
        {
          option: "public_key_path",
          configMapKeyRef: { name: "keys", key: "public.pem" },
          inline: "x",
        },
      ]),
    ]),
    "p",
  );
  assert.match(two.failure?.message ?? "", /set exactly one of configMapKeyRef, secretKeyRef and inline/);
});

test("an inline file's change changes the config hash (the data plane reloads it)", () => {
  const shape = (field: string) =>
    pipeline("p", {
      middleware: [
        {
          name: "shape",
          type: "transform",
          fileOptions: [{ option: "spec_path", inline: [{ operation: "shift", spec: { a: field } }] }],
        },
      ],
    });
  const a = run(gateway(web), [shape("b")]);
  const b = run(gateway(web), [shape("c")]);
  assert.equal(a.files["pipeline.ns.p.toml"], b.files["pipeline.ns.p.toml"]);
  assert.notEqual(a.hash, b.hash);
});

test("TLS: a usable Secret becomes the listener's pair; a missing, mismatched or foreign one leaves only that network out", () => {
  const gw = gateway([
    { name: "secure", port: 8443, tls: { certificateRefs: [{ name: "tls-a" }] } },
    { name: "missing", port: 8444, tls: { certificateRefs: [{ name: "absent" }] } },
    { name: "mixed", port: 8445, tls: { certificateRefs: [{ name: "tls-mixed" }] } },
    { name: "foreign", port: 8446, tls: { certificateRefs: [{ name: "tls-a", namespace: "other" }] } },
    { name: "plain", port: 8080 },
  ]);
  const r = run(gw, [pipeline("all", {}), pipeline("stranded", { networks: ["missing", "mixed"] })]);
  assert.deepEqual(r.gatewayProblems, []);
  const main = r.files["config.toml"]!;
  assert.match(main, /\[network\.secure\.http\][^[]*cert_path = "\.\.\/secrets\/_tls\.secure\.crt"/);
  assert.match(main, /\[network\.secure\.http\][^[]*key_path = "\.\.\/secrets\/_tls\.secure\.key"/);
  for (const n of ["missing", "mixed", "foreign"]) assert.doesNotMatch(main, new RegExp(`\\[network\\.${n}\\b`));
  assert.deepEqual(r.secrets["_tls.secure.key"], pem("a.key"));
  assert.ok(!main.includes("PRIVATE KEY"));
  assert.deepEqual(
    [...r.unavailableNetworks].map(([n, u]) => [n, u.reason]),
    [
      ["missing", "InvalidCertificateRef"],
      ["mixed", "InvalidCertificateRef"],
      ["foreign", "RefNotPermitted"],
    ],
  );
  assert.equal(
    r.unavailableNetworks.get("missing")?.message,
    "spec.networks[1].tls.certificateRefs[0]: Secret ns/absent not found",
  );
  assert.doesNotMatch(r.unavailableNetworks.get("mixed")?.message ?? "", /BEGIN/);
  assert.equal(outcome(r, "all").programmed, true);
  assert.match(r.files["pipeline.ns.all.toml"]!, /networks = \[ "secure", "plain" \]/);
  assert.equal(outcome(r, "stranded").failure?.reason, "NetworkNotReady");
});

test("admission: fileOptions from the cluster are not judged by placeholders; a misspelt option is refused", () => {
  const ok = validateResource(jwt([{ option: "public_key_path", configMapKeyRef: { name: "later", key: "k" } }]));
  assert.deepEqual(ok.errors, []);
  const typo = validateResource(jwt([{ option: "public_key_pth", configMapKeyRef: { name: "later", key: "k" } }]));
  assert.match(typo.errors.join("\n"), /fileOptions\[0\]\.option: unknown option; did you mean "public_key_path"\?/);
  const badInline = validateResource(
    pipeline("p", {
      middleware: [
        { name: "t", type: "transform", fileOptions: [{ option: "spec_path", inline: { not: "a chain" } }] },
      ],
    }),
  );
  assert.match(badInline.errors.join("\n"), /spec\.middleware\[0\]\.fileOptions\[0\]/);
});

test("admission: a certificateRef into another namespace is refused with its spec path", () => {
  const gw = gateway([{ name: "secure", port: 8443, tls: { certificateRefs: [{ name: "t", namespace: "other" }] } }]);
  assert.deepEqual(validateResource(gw).errors, [
    'spec.networks[0].tls.certificateRefs[0].namespace: only the gateway\'s own namespace ("ns") is allowed',
  ]);
  const same = gateway([{ name: "secure", port: 8443, tls: { certificateRefs: [{ name: "t", namespace: "ns" }] } }]);
  assert.deepEqual(validateResource(same).errors, []);
});
