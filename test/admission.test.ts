/**
 * Bad Harmony resources are refused at `kubectl apply`, not reported later: CEL rules in the CRDs
 * (they hold without any webhook) and the operator's validating webhook, which runs the data
 * plane's own checker and answers in spec paths. Against a real kube-apiserver, through kubectl,
 * with the operator's real binary serving the webhook on loopback.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { ROOT, eventually as poll, freePort, sleep } from "../dataplane/test/helpers.js";

const NS = "clinic";
const API = "harmony.runbeam.io/v1alpha1";
const VALIDATOR = "harmony-test-validator";

let cp: ControlPlane;
let operator: { proc: ChildProcess; log: () => string } | undefined;
let webhookPort = 0;

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${operator?.log().slice(-4000) ?? ""}` });

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** `kubectl apply -f -` of one object, as a user would run it. */
const apply = (obj: unknown) => cp.kubectl(["apply", "-f", "-"], JSON.stringify(obj));

const gateway = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API,
  kind: "HarmonyGateway",
  metadata: { name, namespace: NS },
  spec: { networks: [{ name: "web", port: 8080 }], ...spec },
});

const pipeline = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API,
  kind: "HarmonyPipeline",
  metadata: { name, namespace: NS },
  spec: {
    gatewayRef: { name: "edge" },
    endpoints: [{ name: "api" }],
    backends: [{ service: "http", url: "http://backend.clinic.svc:8080" }],
    ...spec,
  },
});

/** The issue's example: jwt_auth with misspelt audience, issuer and required_claims. */
const misspeltJwt = pipeline("jwt-typo", {
  middleware: [
    {
      name: "auth",
      type: "jwt_auth",
      options: {
        jwks_url: "https://idp.example.org/jwks",
        audiance: "fhir",
        isuer: "https://idp.example.org",
        requried_claims: ["sub"],
      },
    },
  ],
});

async function startOperator(): Promise<void> {
  const port = (webhookPort = await freePort());
  const proc = spawn(
    process.execPath,
    [
      join(ROOT, "operator/dist/main.js"),
      "--kubeconfig",
      cp.kubeconfig,
      "--leader-elect",
      "false",
      "--health-port",
      "0",
      "--manage-workloads",
      "false",
      "--webhook-port",
      String(port),
      "--webhook-url",
      `https://127.0.0.1:${port}/mutate-v1-pod`,
      "--webhook-cert-secret",
      "harmony-system/harmony-webhook-cert",
      "--validating-config-name",
      VALIDATOR,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  proc.stdout.setEncoding("utf8").on("data", (c: string) => (log += c));
  proc.stderr.setEncoding("utf8").on("data", (c: string) => (log += c));
  operator = { proc, log: () => log };
  const end = Date.now() + 60_000;
  while (!/"message":"Sidecar webhook serving"/.test(log)) {
    if (proc.exitCode !== null || Date.now() > end) throw new Error(`the operator did not start:\n${log}`);
    await sleep(100);
  }
  // The API server picks up a new webhook configuration through its own informer: a server-side
  // dry run (admission runs, nothing is stored) tells when the webhook is in force.
  await eventually("the API server to call the validating webhook", async () => {
    const r = await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], JSON.stringify(misspeltJwt));
    return r.code !== 0 && /denied the request/.test(r.stderr) ? true : undefined;
  });
}

before(async () => {
  cp = await startControlPlane();
  await cp.installCrds();
  await kubectl(["create", "namespace", "harmony-system"]);
  await kubectl(["create", "namespace", NS]);
  await startOperator();
});

after(async () => {
  const o = operator;
  if (o && o.proc.exitCode === null && o.proc.signalCode === null) {
    o.proc.kill("SIGTERM");
    await once(o.proc, "exit");
  }
  await cp?.stop();
});

/** Applies `obj`, expects a refusal, returns kubectl's error output. */
async function refused(obj: unknown): Promise<string> {
  const r = await apply(obj);
  assert.notEqual(r.code, 0, `accepted: ${JSON.stringify(obj)}\n${r.stdout}`);
  return r.stderr;
}

test("good resources are accepted, and a pipeline whose Secret does not exist yet too (status reports that)", async () => {
  for (const obj of [
    gateway("edge", { networks: [{ name: "web", port: 8080, bindAddress: "::" }], management: { port: 9091 } }),
    {
      apiVersion: API,
      kind: "HarmonyEndpoint",
      metadata: { name: "api", namespace: NS },
      spec: { service: "http", pathPrefix: "/api" },
    },
    pipeline("good", {
      middleware: [
        {
          name: "auth",
          type: "jwt_auth",
          options: { audience: "fhir", issuer: "https://idp.example.org", required_claims: ["sub"] },
          secretOptions: [{ option: "secret", secretKeyRef: { name: "not-created-yet", key: "hmac" } }],
        },
      ],
      backends: [{ service: "http", url: "http://backend.clinic.svc:8080", options: { retries: 2 } }],
    }),
  ]) {
    const r = await apply(obj);
    assert.equal(r.code, 0, r.stderr);
  }
  // What only the cluster knows stays with the status: the missing Secret.
  await eventually("ResolvedRefs=False on the pipeline", async () => {
    const p = JSON.parse(await kubectl(["get", "harmonypipeline", "good", "-n", NS, "-o", "json"])) as {
      status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
    };
    const c = p.status?.conditions?.find((x) => x.type === "ResolvedRefs");
    return c?.status === "False" ? c : undefined;
  }).then((c) => {
    assert.equal(c.reason, "SecretNotFound");
    assert.match(c.message, /^spec\.middleware\[0\]\.secretOptions\[0\]: no Secret clinic\/not-created-yet$/);
  });
});

test("kubectl apply of the misspelt jwt_auth is refused with spec paths and suggestions", async () => {
  const err = await refused(misspeltJwt);
  assert.match(err, /admission webhook "validate\.harmony\.runbeam\.io" denied the request/);
  assert.ok(err.includes('spec.middleware[0].options.audiance: unknown option; did you mean "audience"?'), err);
  assert.ok(err.includes('spec.middleware[0].options.isuer: unknown option; did you mean "issuer"?'), err);
  assert.ok(
    err.includes('spec.middleware[0].options.requried_claims: unknown option; did you mean "required_claims"?'),
    err,
  );
  assert.doesNotMatch(err, /clinic\.jwt-typo|\.toml/, "rendered-TOML names leaked into the message");
  // Nothing was stored.
  const get = await cp.kubectl(["get", "harmonypipeline", "jwt-typo", "-n", NS]);
  assert.notEqual(get.code, 0);
});

test("backend option typos, wrong types and bad values are refused; so is editing a good pipeline into a bad one", async () => {
  const retrys = await refused(
    pipeline("retrys", { backends: [{ service: "http", url: "http://b:1", options: { retrys: 3 } }] }),
  );
  assert.ok(retrys.includes('spec.backends[0].options.retrys: unknown option; did you mean "retries"?'), retrys);

  const wrongType = await refused(
    pipeline("wrong-type", { backends: [{ service: "http", url: "http://b:1", options: { retries: "lots" } }] }),
  );
  assert.match(wrongType, /spec\.backends\[0\]\.options\.retries: must be integer/);

  const secretTypo = await refused(
    pipeline("secret-typo", {
      middleware: [
        {
          name: "auth",
          type: "basic_auth",
          secretOptions: [{ option: "pasword", secretKeyRef: { name: "creds", key: "pw" } }],
        },
      ],
    }),
  );
  assert.ok(
    secretTypo.includes('spec.middleware[0].secretOptions[0].option: unknown option; did you mean "password"?'),
    secretTypo,
  );

  const unknownType = await refused(pipeline("pigeon", { middleware: [{ name: "m", type: "carrier_pigeon" }] }));
  assert.match(unknownType, /spec\.middleware\[0\]\.type: unknown middleware type "carrier_pigeon"/);

  const endpointTypo = await refused({
    apiVersion: API,
    kind: "HarmonyEndpoint",
    metadata: { name: "typo", namespace: NS },
    spec: { service: "http", pathPrefix: "/t", options: { strip_prefx: true } },
  });
  assert.match(endpointTypo, /spec\.options\.strip_prefx: unknown option/);

  const edited = await refused(
    pipeline("good", { backends: [{ service: "http", url: "http://b:1", options: { retries: -1 } }] }),
  );
  assert.match(edited, /spec\.backends\[0\]\.options\.retries: must be >= 0/);
});

test("network names: reserved, all digits and colliding 15-character port names are refused", async () => {
  const reserved = await refused(gateway("g1", { networks: [{ name: "management", port: 8080 }] }));
  assert.match(reserved, /"management" is reserved for the management listener/);

  const digits = await refused(gateway("g2", { networks: [{ name: "8080", port: 8080 }] }));
  assert.match(digits, /first 15 characters name a container port/);

  const collide = await refused(
    gateway("g3", {
      networks: [
        { name: "patient-records-public", port: 8080 },
        { name: "patient-records-private", port: 8081 },
      ],
    }),
  );
  assert.match(collide, /network names must differ in their first 15 characters/);

  const pipelineOnManagement = await refused(pipeline("mgmt", { networks: ["management"] }));
  assert.match(pipelineOnManagement, /"management" is the management listener/);
});

test("bindAddress must be an IP, network ports must not take the management port, gatewayRef.name is a DNS name", async () => {
  const host = await refused(gateway("g4", { networks: [{ name: "web", port: 8080, bindAddress: "localhost" }] }));
  assert.match(host, /must be an IPv4 or IPv6 address/);

  // 9090 with no management block: the management listener's default port.
  const mgmt = await refused(gateway("g5", { networks: [{ name: "web", port: 9090 }] }));
  assert.match(mgmt, /management\.port must differ from every network port \(it is 9090 when unset\)/);

  const ref = await refused(pipeline("bad-ref", { gatewayRef: { name: "Edge_GW" } }));
  assert.match(ref, /spec\.gatewayRef\.name/);

  // The same gateway on other ports is fine.
  const ok = await apply(gateway("g6", { networks: [{ name: "web", port: 9090 }], management: { port: 9100 } }));
  assert.equal(ok.code, 0, ok.stderr);
});

/** POSTs `body` to the validating webhook directly, trusting the CA in the operator's Secret. */
async function postValidate(body: string): Promise<{ status: number; json: unknown }> {
  const secret = JSON.parse(
    await kubectl(["get", "secret", "harmony-webhook-cert", "-n", "harmony-system", "-o", "json"]),
  ) as {
    data: Record<string, string>;
  };
  const ca = Buffer.from(secret.data["ca.crt"]!, "base64").toString();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `https://127.0.0.1:${webhookPort}/validate-harmony-v1alpha1`,
      { method: "POST", ca, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

test("the webhook answers garbage with a 4xx/5xx (the API server's failurePolicy decides), and keeps serving", async () => {
  const review = (object: unknown, operation = "CREATE", oldObject?: unknown) =>
    JSON.stringify({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: { uid: "u-1", kind: { kind: "HarmonyPipeline" }, operation, namespace: NS, object, oldObject },
    });
  assert.equal((await postValidate("not json")).status, 400);
  assert.equal((await postValidate(JSON.stringify({ kind: "AdmissionReview" }))).status, 400);
  // An object the API server's schema would have refused never reaches us that way; sent directly,
  // it is a failed check, not a crash.
  const broken = await postValidate(review({ apiVersion: API, kind: "HarmonyPipeline", metadata: {}, spec: {} }));
  assert.ok(broken.status >= 400, String(broken.status));
  // Still serving: a real review gets its verdict.
  const typo = await postValidate(review(misspeltJwt));
  assert.equal(typo.status, 200);
  const response = (typo.json as { response: { uid: string; allowed: boolean; status: { message: string } } }).response;
  assert.equal(response.uid, "u-1");
  assert.equal(response.allowed, false);
  assert.match(response.status.message, /options\.audiance: unknown option; did you mean "audience"\?/);
  // An update that leaves spec alone (a label, a finalizer) is admitted even for a spec that would not be.
  const relabel = await postValidate(review(misspeltJwt, "UPDATE", misspeltJwt));
  assert.equal((relabel.json as { response: { allowed: boolean } }).response.allowed, true);
});

test("HarmonyNetwork: duplicate rule names, destinations outside the domain, operation fields of another protocol and empty membership are refused", async () => {
  const net = (spec: object) => ({
    apiVersion: "harmony.runbeam.io/v1alpha1",
    kind: "HarmonyNetwork",
    metadata: { name: "hospitals" },
    spec: { domain: "hospitals.example", members: { orgs: ["org-a"] }, ...spec },
  });
  const rule = (name: string, extra: object = {}) => ({ name, action: "deny", ...extra });
  const bad = await refused(
    net({
      policies: [
        rule("no-store", { operations: [{ protocol: "http", commands: ["C-STORE"] }] }),
        rule("no-store", { destination: { endpoints: ["harmony://elsewhere.example/org-b/pacs"] } }),
      ],
    }),
  );
  assert.match(bad, /spec\.policies\[1\]\.name: "no-store" is already the name of spec\.policies\[0\]/);
  assert.match(
    bad,
    /spec\.policies\[1\]\.destination\.endpoints\[0\]: harmony:\/\/elsewhere\.example\/org-b\/pacs is not in this network's domain/,
  );
  assert.match(bad, /spec\.policies\[0\]\.operations\[0\]\.commands: does not apply to protocol http/);
  const empty = await refused(net({ members: {} }));
  assert.match(empty, /spec\.members: names no org/);
  const good = await apply(
    net({
      policies: [
        rule("b-pacs-no-store", {
          destination: { endpoints: ["harmony://hospitals.example/org-b/pacs"] },
          operations: [{ protocol: "dicom", commands: ["C-STORE"] }],
        }),
      ],
    }),
  );
  assert.equal(good.code, 0, good.stderr);
});

test("HarmonyNetwork mode CertManager: a missing or half-specified issuerRef is refused, by the CRD and by the webhook", async () => {
  const net = (name: string, ca: object) => ({
    apiVersion: "harmony.runbeam.io/v1alpha1",
    kind: "HarmonyNetwork",
    metadata: { name },
    spec: { domain: "hospitals.example", members: { orgs: ["org-a"] }, ca },
  });
  // The CRD alone (CEL rule and required fields) refuses these: they never reach the webhook.
  const none = await refused(net("cm-none", { mode: "CertManager" }));
  assert.match(none, /mode CertManager needs certManager\.issuerRef \{name, kind: Issuer\|ClusterIssuer\}/);
  const noKind = await refused(net("cm-nokind", { mode: "CertManager", certManager: { issuerRef: { name: "ca" } } }));
  assert.match(noKind, /spec\.ca\.certManager\.issuerRef\.kind: Required value/);
  const badKind = await refused(
    net("cm-badkind", { mode: "CertManager", certManager: { issuerRef: { name: "ca", kind: "Vault" } } }),
  );
  assert.match(badKind, /spec\.ca\.certManager\.issuerRef\.kind: Unsupported value: "Vault"/);
  // The webhook says the same where the CRD is older than the operator (no such rule in it).
  const review = (object: unknown) =>
    JSON.stringify({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: { uid: "u-cm", kind: { kind: "HarmonyNetwork" }, operation: "CREATE", object },
    });
  const hook = (await postValidate(
    review(net("cm-hook", { mode: "CertManager", certManager: { issuerRef: { kind: "ClusterIssuer" } } })),
  )) as { json: { response: { allowed: boolean; status: { message: string } } } };
  assert.equal(hook.json.response.allowed, false);
  assert.match(
    hook.json.response.status.message,
    /spec\.ca\.certManager\.issuerRef: mode CertManager needs issuerRef \{name, kind: Issuer\|ClusterIssuer\}; missing: name/,
  );
  const good = await apply(
    net("cm-good", { mode: "CertManager", certManager: { issuerRef: { name: "ca", kind: "ClusterIssuer" } } }),
  );
  assert.equal(good.code, 0, good.stderr);
});
