/**
 * The data plane's Kubernetes API config source (`--config-source`) against a real kube-apiserver:
 * it runs with the token of the ServiceAccount the operator makes per gateway (bound to the
 * operator's own Role for it), through a TCP relay the test can cut. No syncer and no kubelet run:
 * the mounted directory changes only when the test writes it.
 */
import { test, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { once } from "node:events";
import { join } from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { connect as tlsConnect } from "node:tls";
import { createServer as createHttpsServer } from "node:https";
import { startControlPlane, type ControlPlane } from "./controlplane/controlplane.js";
import { writeAtomically } from "./syncer.js";
import { startRelay, type Relay } from "./kube-relay.js";
import { writeKubeconfig } from "./kubeconfig.js";
import {
  eventually,
  freePort,
  http,
  runCli,
  startDataplane,
  startUpstream,
  tempDir,
} from "../dataplane/test/helpers.js";
import type { Dataplane } from "../dataplane/test/helpers.js";
import { configReaderRbac, configMapName, secretName } from "../operator/src/translator/workload.js";
import type { HarmonyGateway } from "../operator/src/api/v1alpha1.js";
import { getObject, kubeconfigConnection, KubeApiError, watchObjects } from "../dataplane/src/config/kube/api.js";

const NS = "ward";
const gw = {
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyGateway",
  metadata: { name: "edge", namespace: NS, uid: "00000000-0000-0000-0000-000000000001" },
  spec: { networks: [] },
} as unknown as HarmonyGateway;
const CM = configMapName(gw);
const SECRET = secretName(gw);
const OLD_PASS = "old-pass-f00d";
const NEW_PASS = "new-pass-beef";

let cp: ControlPlane;
let relay: Relay;
let saKubeconfig: string;
let saToken: string;
let upstreamUrl: string;
let closeUpstream: () => Promise<void>;
const held: ServerResponse[] = [];

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const main = `[proxy]
id = "ward/edge"
pipelines_path = "."
shutdown_timeout_ms = 5000

[logging]
log_level = "debug"

[management]
enabled = true
network = "management"

[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0

[network.default.http]
bind_address = "127.0.0.1"
bind_port = 0
`;

/** One pipeline at `prefix`, behind basic auth whose password is the Secret's key `pw`. */
const pipeline = (name: string, prefix: string, secretDir: string) => `# pipeline ${name}
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_auth"]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "${prefix}" }

[middleware.${name}_auth]
type = "basic_auth"
options = { username = "nurse", password_file = "${secretDir}/pw" }

[backends.${name}_out]
service = "http"
options = { base_url = "${upstreamUrl}" }
`;

const basic = (pass: string) => ({ authorization: `Basic ${Buffer.from(`nurse:${pass}`).toString("base64")}` });

async function applyConfigMap(data: Record<string, string>): Promise<void> {
  await kubectl(
    ["apply", "--server-side", "--force-conflicts", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: CM, namespace: NS }, data }),
  );
}
async function applySecret(pw: string): Promise<void> {
  await kubectl(
    ["apply", "--server-side", "--force-conflicts", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "Secret", metadata: { name: SECRET, namespace: NS }, stringData: { pw } }),
  );
}

type Info = {
  config: { hash: string; source: string; kubernetes?: { connected: boolean; version?: string } };
  last_reload?: { ok: boolean; trigger: string; at: string; problems?: string[]; source?: string };
};
const info = async (dp: Dataplane) => (await http(dp.url("management", "/admin/info"))).json() as Info;

/** Everything the data plane wrote: its JSON log lines and stderr. */
const logText = (dp: Dataplane) => dp.logs.map((l) => JSON.stringify(l)).join("\n") + dp.stderr();

/**
 * The data plane on `dir`'s files with the API source on the test's ConfigMap and Secret (read
 * with the gateway's ServiceAccount token, through the relay), stopped after the test; `wait`
 * polls with the log's tail as context.
 */
async function startWithApiSource(t: TestContext, dir: string, secretDir: string) {
  const dp = await startDataplane(join(dir, "config.toml"), { HARMONY_POLL_MS: "200" }, [
    "--config-source",
    `kubernetes://${NS}/${CM}?secret=${SECRET}&secretDir=${secretDir}`,
    "--kubeconfig",
    saKubeconfig,
  ]);
  t.after(() => dp.stop());
  const context = () =>
    dp.logs
      .map((l) => JSON.stringify(l))
      .join("\n")
      .slice(-4000);
  const wait = <T>(what: string, fn: () => Promise<T | undefined | false>) =>
    eventually(what, fn, { timeoutMs: 30_000, context });
  return { dp, wait };
}

/** Revision 1 (`config.toml` and pipeline a) in the files and the API, the Secret mount and the API holding OLD_PASS. */
async function firstRevision(configToml: string) {
  const dir = tempDir();
  const secretDir = tempDir();
  writeFileSync(join(secretDir, "pw"), OLD_PASS);
  const v1 = { "config.toml": configToml, "pipeline.a.toml": pipeline("a", "/a", secretDir) };
  writeAtomically(dir, v1, 1);
  await applyConfigMap(v1);
  await applySecret(OLD_PASS);
  return { dir, secretDir };
}

before(async () => {
  cp = await startControlPlane();
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith("/slow")) {
      held.push(res); // answered when the test says so
      return;
    }
    res.end(`upstream ${req.url}`);
  });
  upstreamUrl = up.url;
  closeUpstream = () => up.close();
  await kubectl(["create", "namespace", NS]);
  // Exactly what the operator applies for a gateway's pods.
  await kubectl(
    ["apply", "--server-side", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "List", items: configReaderRbac(gw) }),
  );
  // Objects the Role must not open.
  await kubectl(["create", "configmap", "other", "-n", NS, "--from-literal=k=v"]);
  await kubectl(["create", "secret", "generic", "other", "-n", NS, "--from-literal=k=hidden"]);
  saToken = (await kubectl(["create", "token", "edge-harmony", "-n", NS, "--duration=1h"])).trim();
  relay = await startRelay(new URL(cp.server));
  saKubeconfig = writeKubeconfig(join(tempDir(), "sa-kubeconfig"), {
    server: `https://127.0.0.1:${relay.port}`,
    caPem: cp.caPem,
    token: saToken,
  });
});

after(async () => {
  for (const r of held.splice(0)) r.destroy();
  await closeUpstream?.();
  await relay?.close();
  await cp?.stop();
});

test("--config-source: a bad URI is a usage error naming the expected form", async () => {
  const r = await runCli(["--config", "x.toml", "--config-source", "kubernetes://Bad_NS"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /expected kubernetes:\/\/<namespace>\/<configmap>/);
});

test("the gateway's Role reads exactly its ConfigMap (get, watch) and Secret (get), nothing else", async () => {
  const conn = kubeconfigConnection(saKubeconfig);
  const status = (p: Promise<unknown>) =>
    p.then(
      () => 200,
      (e: unknown) => (e instanceof KubeApiError ? e.status : -1),
    );
  const cmPath = `/api/v1/namespaces/${NS}/configmaps`;
  const secretPath = `/api/v1/namespaces/${NS}/secrets`;
  await applyConfigMap({ "config.toml": main });
  await applySecret(OLD_PASS);
  assert.equal(await status(getObject(conn, `${cmPath}/${CM}`)), 200);
  assert.equal(await status(getObject(conn, `${secretPath}/${SECRET}`)), 200);
  assert.equal(await status(getObject(conn, `${cmPath}/other`)), 403);
  assert.equal(await status(getObject(conn, `${secretPath}/other`)), 403);
  assert.equal(await status(getObject(conn, cmPath)), 403, "list ConfigMaps");
  assert.equal(await status(getObject(conn, secretPath)), 403, "list Secrets");
  assert.equal(await status(getObject(conn, `${secretPath}?fieldSelector=metadata.name%3D${SECRET}`)), 403);
  assert.equal(await status(getObject(conn, `/api/v1/namespaces/default/configmaps/${CM}`)), 403);
  // As the source does it: from the resourceVersion of a GET, ended by the server after a second.
  const rv = (await getObject<{ metadata: { resourceVersion: string } }>(conn, `${cmPath}/${CM}`))!.metadata
    .resourceVersion;
  const watch = (path: string, name: string) =>
    status(
      watchObjects(
        conn,
        `${path}?fieldSelector=metadata.name%3D${name}&watch=true&resourceVersion=${rv}&timeoutSeconds=1`,
        () => undefined,
      ),
    );
  assert.equal(await watch(cmPath, "other"), 403);
  assert.equal(await watch(cmPath, CM), 200);
  assert.equal(await watch(secretPath, SECRET), 403, "the Secret is read, never watched");
});

test("config through the API: edits served without a file change, bad ones refused, reload mid-request, API down → files", async (t) => {
  const { dir, secretDir } = await firstRevision(main);
  const { dp, wait } = await startWithApiSource(t, dir, secretDir);

  await wait("the API source to connect", async () => (await info(dp)).config.kubernetes?.connected);
  assert.equal((await http(dp.url("default", "/a/x"), { headers: basic(OLD_PASS) })).status, 200);

  // 1. An edit through the API (Secret first, as the operator writes them) is served; the files never change.
  await applySecret(NEW_PASS);
  const v2 = { "config.toml": main + "# rev 2\n", "pipeline.a.toml": pipeline("a", "/b", secretDir) };
  await applyConfigMap(v2);
  await wait("/b served from the API", async () => {
    const r = await http(dp.url("default", "/b/x"), { headers: basic(NEW_PASS) });
    return r.status === 200 && r.text === "upstream /x";
  });
  assert.equal((await http(dp.url("default", "/a/x"), { headers: basic(NEW_PASS) })).status, 404);
  // The Secret's new value came through the API too: the mounted file still holds the old one.
  assert.equal((await http(dp.url("default", "/b/x"), { headers: basic(OLD_PASS) })).status, 401);
  let i = await info(dp);
  assert.equal(i.config.source, "kubernetes");
  assert.equal(i.last_reload?.trigger, "kubernetes");

  // 2. A broken revision is refused with file and line; the last good one keeps serving.
  const broken = { ...v2, "pipeline.a.toml": "# broken\n[pipelines.a\n" };
  await applyConfigMap(broken);
  i = await wait("the broken revision to be refused", async () => {
    const x = await info(dp);
    return x.last_reload?.ok === false ? x : undefined;
  });
  assert.equal(i.last_reload!.source, "kubernetes");
  assert.match(i.last_reload!.problems!.join("\n"), /pipeline\.a\.toml:2.*TOML syntax/);
  assert.equal((await http(dp.url("default", "/b/x"), { headers: basic(NEW_PASS) })).status, 200);

  // 3. A reload while a request is in flight: it finishes on its generation, and nothing in between fails.
  const slow = http(dp.url("default", "/b/slow"), { headers: basic(NEW_PASS) });
  await wait("the slow request to reach the upstream", () => Promise.resolve(held.length === 1));
  const v3 = { ...v2, "pipeline.c.toml": pipeline("c", "/c", secretDir) };
  await applyConfigMap(v3);
  const during: Promise<number>[] = [];
  await wait("/c served", async () => {
    during.push(http(dp.url("default", "/b/x"), { headers: basic(NEW_PASS) }).then((r) => r.status));
    return (await http(dp.url("default", "/c/x"), { headers: basic(NEW_PASS) })).status === 200;
  });
  held.shift()!.end("slow done");
  const s = await slow;
  assert.equal(s.status, 200);
  assert.equal(s.text, "slow done");
  assert.deepEqual(new Set(await Promise.all(during)), new Set([200]));

  // 4. The API unreachable: the config keeps serving; the kubelet's late copy of what is served is
  // a no-op; a newer file revision is served from the files.
  relay.cut(true);
  await wait("the source to notice", async () => (await info(dp)).config.kubernetes?.connected === false);
  const before = await info(dp);
  writeAtomically(dir, v3, 2);
  await dp.waitForLog((l) => l.message === "config unchanged; nothing to reload" && l.trigger === "file", 30_000);
  assert.deepEqual((await info(dp)).last_reload, before.last_reload);
  const v4 = { ...v3, "pipeline.d.toml": pipeline("d", "/d", secretDir) };
  writeAtomically(dir, v4, 3);
  // From the files, the password is the mounted one.
  await wait("/d served from the files", async () => {
    return (await http(dp.url("default", "/d/x"), { headers: basic(OLD_PASS) })).status === 200;
  });
  assert.equal((await info(dp)).config.source, "files");
  assert.equal((await http(dp.url("default", "/c/x"), { headers: basic(OLD_PASS) })).status, 200);

  // 5. Back: the API's current revision (v3) is the newest again.
  relay.cut(false);
  await wait("the API revision again", async () => {
    const x = await info(dp);
    return x.config.kubernetes?.connected && x.config.source === "kubernetes";
  });
  assert.equal((await http(dp.url("default", "/d/x"), { headers: basic(NEW_PASS) })).status, 404);
  assert.equal((await http(dp.url("default", "/c/x"), { headers: basic(NEW_PASS) })).status, 200);

  // Secrets never reach the logs: neither the passwords nor the ServiceAccount token.
  const all = logText(dp);
  for (const secret of [OLD_PASS, NEW_PASS, saToken]) assert.ok(!all.includes(secret), "a secret in the logs");
});

test("a hostile or broken API answer (garbage event, 410, 500 with a body) never crashes the data plane or reaches its log", async (t) => {
  // A fake apiserver on the real one's serving certificate (valid for 127.0.0.1, signed by its CA).
  const leak = "BODY-MUST-NOT-BE-LOGGED-7d1e";
  const secretDir = tempDir();
  writeFileSync(join(secretDir, "pw"), OLD_PASS);
  const files = { "config.toml": main, "pipeline.a.toml": pipeline("a", "/a", secretDir) };
  const cm = { metadata: { resourceVersion: "7" }, data: files };
  let watches = 0;
  const fake = createHttpsServer(
    { cert: readFileSync(join(cp.dir, "server.crt")), key: readFileSync(join(cp.dir, "server.key")) },
    (req, res) => {
      const url = req.url ?? "";
      if (url.includes("watch=true")) {
        watches++;
        if (watches >= 3) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify({ kind: "Status", reason: "InternalError", message: leak }));
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        if (watches === 1) res.end("this is not JSON\n");
        else
          res.end(JSON.stringify({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } }) + "\n");
        return;
      }
      if (url.includes("/secrets/")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({ metadata: { resourceVersion: "3" }, data: { pw: Buffer.from(leak).toString("base64") } }),
        );
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(cm));
    },
  );
  fake.listen(0, "127.0.0.1");
  await once(fake, "listening");
  t.after(() => {
    fake.closeAllConnections();
    fake.close();
  });
  const kubeconfig = writeKubeconfig(join(tempDir(), "kubeconfig"), {
    server: `https://127.0.0.1:${(fake.address() as { port: number }).port}`,
    caPem: cp.caPem,
    token: "fake-token-0f9c",
  });
  const dir = tempDir();
  writeAtomically(dir, files, 1);
  const dp = await startDataplane(join(dir, "config.toml"), {}, [
    "--config-source",
    `kubernetes://${NS}/fake?secret=fake-s&secretDir=${secretDir}`,
    "--kubeconfig",
    kubeconfig,
  ]);
  t.after(() => dp.stop());
  await eventually("three broken watches", () => Promise.resolve(watches >= 3), { timeoutMs: 30_000 });
  await eventually(
    "the source to report the failure",
    async () => (await info(dp)).config.kubernetes?.connected === false,
  );
  assert.equal(dp.proc.exitCode, null);
  // Still serving; the Secret value came through the API (it is the password now).
  assert.equal((await http(dp.url("default", "/a/x"), { headers: basic(leak) })).status, 200);
  const all = logText(dp);
  assert.match(all, /Kubernetes API answered 500 InternalError/);
  assert.ok(!all.includes(leak), "a response body or Secret value in the log");
  assert.ok(!all.includes("fake-token-0f9c"), "the token in the log");
});

test("proxy.workers = 2 with --config-source: the primary watches the API once and every worker serves its revisions", async (t) => {
  const grouped = main.replace("[proxy]\n", "[proxy]\nworkers = 2\n");
  const { dir, secretDir } = await firstRevision(grouped);
  const { dp, wait } = await startWithApiSource(t, dir, secretDir);
  type GroupInfo = Info & { workers: { worker: number; config_hash?: string; last_reload?: { ok: boolean } }[] };
  const groupInfo = async () => (await http(dp.url("management", "/admin/info"))).json() as GroupInfo;
  const connected = await wait("the API source to connect", async () => {
    const i = await groupInfo();
    return i.config.kubernetes?.connected ? i : undefined;
  });
  const initial = connected.workers[0]!.config_hash;

  // A revision through the API (and a new Secret value) reaches both workers; the files never change.
  // The Secret lands first as a revision of its own with the old config's hash (secrets are not in
  // the hash), so "both workers on one hash" alone could be that revision: wait for a new hash.
  await applySecret(NEW_PASS);
  await applyConfigMap({ "config.toml": grouped + "# rev 2\n", "pipeline.a.toml": pipeline("a", "/b", secretDir) });
  const served = await wait("both workers on the API's revision", async () => {
    const i = await groupInfo();
    const hashes = new Set(i.workers.map((w) => w.config_hash));
    return i.workers.length === 2 && hashes.size === 1 && !hashes.has(initial) && i.config.source === "kubernetes"
      ? i
      : undefined;
  });
  for (let n = 0; n < 6; n++) {
    const r = await http(dp.url("default", "/b/x"), { headers: basic(NEW_PASS), agent: false });
    assert.equal(r.status, 200, r.text);
  }
  // One watch for the group: the primary's, not one per worker.
  assert.ok(dp.logs.some((l) => l.message === "workers reloaded" && l.trigger === "kubernetes"));

  // A broken revision is refused by both workers; both keep serving the last good one.
  await applyConfigMap({ "config.toml": grouped, "pipeline.a.toml": "# broken\n[pipelines.a\n" });
  const refused = await wait("both workers to refuse it", async () => {
    const i = await groupInfo();
    return i.workers.every((w) => w.last_reload?.ok === false) ? i : undefined;
  });
  assert.ok(refused.workers.every((w) => w.config_hash === served.workers[0]!.config_hash));
  assert.equal((await http(dp.url("default", "/b/x"), { headers: basic(NEW_PASS), agent: false })).status, 200);
  const all = logText(dp);
  for (const secret of [OLD_PASS, NEW_PASS, saToken]) assert.ok(!all.includes(secret), "a secret in the logs");
});

/** A self-signed pair whose subject CN is `cn`. */
function selfSigned(cn: string): { crt: Buffer; key: Buffer } {
  const d = tempDir();
  const r = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"].concat([
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      join(d, "k"),
      "-out",
      join(d, "c"),
    ]),
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  return { crt: readFileSync(join(d, "c")), key: readFileSync(join(d, "k")) };
}

/** The CN of the certificate served on `port`. */
function presentedCN(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
    s.once("secureConnect", () => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.end();
    });
    s.once("error", reject);
  });
}

test("an HTTPS network that arrives through the API is served with the API's certificate while the mount lacks it, and its rotation is taken in place", async (t) => {
  // The Gateway API case: a Gateway's certificate Secret appears after the Gateway, the operator
  // adds the HTTPS listener, and the kubelet's copy of the Secret is a minute behind (here: never).
  const dir = tempDir();
  const secretDir = tempDir(); // the mount, empty throughout
  const port = await freePort();
  writeAtomically(dir, { "config.toml": main }, 1);
  await applyConfigMap({ "config.toml": main });
  await kubectl(["delete", "secret", SECRET, "-n", NS, "--ignore-not-found"]);
  const { dp, wait } = await startWithApiSource(t, dir, secretDir);
  await wait("the API source to connect", async () => (await info(dp)).config.kubernetes?.connected);

  const withTls = (rev: number) => `${main}
# rev ${rev}
[network.web.http]
bind_address = "127.0.0.1"
bind_port = ${port}
cert_path = "${secretDir}/gw.crt"
key_path = "${secretDir}/gw.key"
`;
  const applyPair = async (p: { crt: Buffer; key: Buffer }) =>
    kubectl(
      ["apply", "--server-side", "--force-conflicts", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: SECRET, namespace: NS },
        data: { "gw.crt": p.crt.toString("base64"), "gw.key": p.key.toString("base64") },
      }),
    );

  // Secret first, then the config naming it, as the operator writes them.
  await applyPair(selfSigned("gateway v1"));
  await applyConfigMap({ "config.toml": withTls(1) });
  assert.equal(await wait("the HTTPS network served", () => presentedCN(port).catch(() => undefined)), "gateway v1");
  assert.equal((await info(dp)).last_reload?.ok, true);

  // A renewed certificate through the API: served by the same listener, the mount still empty.
  await applyPair(selfSigned("gateway v2"));
  await applyConfigMap({ "config.toml": withTls(2) });
  await wait("the renewed certificate served", async () => (await presentedCN(port)) === "gateway v2");
  assert.equal(dp.logs.filter((l) => l.message === "listener closed" && l.network === "web").length, 0);
  const all = logText(dp);
  assert.ok(!all.includes("PRIVATE KEY"), "a key in the logs");
});
