/**
 * The product on a real node: images built by `make images` (scripts/images.sh), the Helm chart
 * installed with them, every example in examples/kubernetes/ Ready, and real requests from a client
 * pod through each HTTP gateway's Service and through a sidecar injected into an app pod. The
 * examples' backends are small echo servers running as pods under the Service names the examples use;
 * nothing leaves the machine. Needs root (test/cluster/node.sh); skipped, saying why, otherwise.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, eventually } from "../../dataplane/test/helpers.js";
import { startCluster, type Cluster } from "./cluster.js";
import { buildImages, IMAGE_TAG } from "./images.js";

const NS = "harmony-system";
const IMAGE = `ghcr.io/runbeam/harmony-dataplane:${IMAGE_TAG}`;
const NODE = "/nodejs/bin/node";

/** An HTTP server answering every request with what it received, as JSON (the examples' backends). */
const ECHO = `require("http").createServer((q, s) => {
  s.setHeader("content-type", "application/json");
  s.end(JSON.stringify({ upstream: process.env.NAME, method: q.method, url: q.url, headers: q.headers }));
}).listen(Number(process.env.PORT));`;

const echoManifest = (ns: string, name: string, port: number) => `
apiVersion: v1
kind: Namespace
metadata: {name: ${ns}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${ns}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      containers:
        - name: echo
          image: ${IMAGE}
          imagePullPolicy: Never
          command: [${NODE}, -e, ${JSON.stringify(ECHO)}]
          env: [{name: NAME, value: ${name}}, {name: PORT, value: "${port}"}]
          ports: [{containerPort: ${port}}]
          readinessProbe: {tcpSocket: {port: ${port}}, periodSeconds: 1}
          securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  selector: {app: ${name}}
  ports: [{port: ${port}, targetPort: ${port}}]
`;

let cluster: Cluster | undefined;
let skip: string | false = false;
if (process.getuid?.() !== 0) skip = "needs root: the real node runs containerd, a kubelet and iptables";

/** Runs `script` with node in a pod of `ns` (the data-plane image) and returns its stdout once it succeeded. */
async function clientPod(ns: string, name: string, script: string, env: Record<string, string> = {}): Promise<string> {
  const c = cluster!;
  await c.kubectlOk([
    "-n",
    ns,
    "run",
    name,
    `--image=${IMAGE}`,
    "--image-pull-policy=Never",
    "--restart=Never",
    ...Object.entries(env).map(([k, v]) => `--env=${k}=${v}`),
    "--command",
    "--",
    NODE,
    "-e",
    script,
  ]);
  const phase = await eventually(
    `pod ${ns}/${name} finished`,
    async () => {
      const p = (await c.kubectlOk(["-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}"])).trim();
      return p === "Succeeded" || p === "Failed" ? p : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  const logs = await c.kubectlOk(["-n", ns, "logs", name]);
  assert.equal(phase, "Succeeded", `client pod ${ns}/${name} failed:\n${logs}`);
  return logs;
}

async function applyExample(ns: string, file: string, gateway: string): Promise<void> {
  const c = cluster!;
  await c.kubectlOk(["-n", ns, "apply", "--server-side", "-f", join(ROOT, "examples", "kubernetes", file)]);
  const r = await c.kubectl(["-n", ns, "wait", "--for=condition=Ready", `harmonygateway/${gateway}`, "--timeout=180s"]);
  if (r.code !== 0) {
    const why = await c.kubectl(["-n", ns, "get", "harmonygateway,deploy,pods", "-o", "wide"]);
    const ev = await c.kubectl(["-n", ns, "get", "events", "--sort-by=.lastTimestamp"]);
    assert.fail(`${file}: gateway ${gateway} not Ready: ${r.stderr}\n${why.stdout}\n${ev.stdout.slice(-3000)}`);
  }
  // Gateway Ready counts only pods the kubelet has marked Ready, so no rollout wait is needed here:
  // before that rule, Ready came first and a client got "connection refused" from the Service.
}

/**
 * Client-side helper for the pods' scripts: fetch that retries only "connection refused" for a few
 * seconds (kube-proxy programs a Service's endpoints a moment after they turn ready).
 */
const FETCH_RETRY = `const get = async (url, init, n = 20) => {
  try { return await fetch(url, init); } catch (e) {
    if (n > 0 && e.cause?.code === "ECONNREFUSED") { await new Promise((r) => setTimeout(r, 500)); return get(url, init, n - 1); }
    throw e;
  }
};`;

describe("a real node: chart, examples, traffic", { skip }, () => {
  before(async () => {
    const images = await buildImages();
    cluster = await startCluster({ images: [images.dataplane, images.operator] });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("the chart installs with the local images; the operator runs as its ServiceAccount and leads", async () => {
    const c = cluster!;
    const r = await c.helm([
      "install",
      "harmony",
      join(ROOT, "charts", "harmony"),
      "-n",
      NS,
      "--create-namespace",
      "--set",
      "replicaCount=2",
      "--set",
      "webhook.enabled=true",
      "--wait",
      "--timeout=180s",
    ]);
    assert.equal(r.code, 0, `helm install failed:\n${r.stderr}\n${r.stdout}`);
    const pods = JSON.parse(
      await c.kubectlOk(["-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=harmony", "-o", "json"]),
    ) as {
      items: {
        metadata: { name: string };
        spec: { serviceAccountName: string };
        status: { containerStatuses?: { ready: boolean; image: string }[] };
      }[];
    };
    assert.equal(pods.items.length, 2);
    for (const p of pods.items) {
      assert.equal(p.spec.serviceAccountName, "harmony", p.metadata.name);
      assert.ok(
        p.status.containerStatuses?.every((s) => s.ready),
        `${p.metadata.name} not ready`,
      );
    }
    const names = pods.items.map((p) => p.metadata.name);
    const holder = await eventually(
      "an operator pod holds the Lease",
      async () => {
        const out = await c.kubectl(["-n", NS, "get", "lease", "-o", "jsonpath={.items[*].spec.holderIdentity}"]);
        const ids = out.stdout.trim().split(/\s+/).filter(Boolean);
        return ids.find((id) => names.some((n) => id.startsWith(n)));
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.ok(holder);
  });

  test("fhir-gateway: Ready, and a client pod's JWT-authenticated request reaches the FHIR server through the Service", async () => {
    const c = cluster!;
    await c.kubectlOk(["apply", "-f", "-"], echoManifest("clinical", "fhir-server", 8103));
    const ns = "ex-fhir";
    await c.kubectlOk(["create", "namespace", ns]);
    const secret = "a-test-only-hmac-secret-of-sufficient-length-0123456789";
    await c.kubectlOk(["-n", ns, "create", "secret", "generic", "fhir-jwt", `--from-literal=hmac-secret=${secret}`]);
    await applyExample(ns, "fhir-gateway.yaml", "fhir-gateway");
    const script = `${FETCH_RETRY}
const b = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const h = b({ alg: "HS256", typ: "JWT" });
const p = b({ iss: "https://auth.hospital.example.org", aud: "fhir-gateway", sub: "nurse-7", exp: Math.floor(Date.now() / 1000) + 600 });
const sig = require("crypto").createHmac("sha256", process.env.SECRET).update(h + "." + p).digest("base64url");
(async () => {
  const none = await get(process.env.URL);
  const ok = await get(process.env.URL, { headers: { authorization: "Bearer " + h + "." + p + "." + sig } });
  console.log(JSON.stringify({ none: none.status, noneType: none.headers.get("content-type"), status: ok.status, body: await ok.json() }));
})().catch((e) => { console.error(e); process.exit(1); });`;
    const out = JSON.parse(
      await clientPod(ns, "client", script, {
        SECRET: secret,
        URL: `http://fhir-gateway-harmony.${ns}.svc.cluster.local:8080/fhir/Patient?name=smith`,
      }),
    ) as {
      none: number;
      noneType: string;
      status: number;
      body: { upstream: string; url: string; headers: Record<string, string> };
    };
    assert.equal(out.none, 401);
    assert.match(out.noneType, /application\/fhir\+json/, "a FHIR endpoint answers with an OperationOutcome");
    assert.equal(out.status, 200);
    assert.equal(out.body.upstream, "fhir-server");
    assert.equal(out.body.url, "/fhir/R4/Patient?name=smith");
    assert.equal(out.body.headers["x-user-id"], "nurse-7");
  });

  test("dicomweb-gateway: Ready, and a QIDO request from a client pod reaches the PACS through the Service", async () => {
    const c = cluster!;
    await c.kubectlOk(["apply", "-f", "-"], echoManifest("pacs", "orthanc", 8042));
    const ns = "ex-dicomweb";
    await c.kubectlOk(["create", "namespace", ns]);
    await applyExample(ns, "dicomweb-gateway.yaml", "imaging");
    const script = `${FETCH_RETRY}
get(process.env.URL, { headers: { accept: "application/dicom+json" } })
  .then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.json() })))
  .catch((e) => { console.error(e); process.exit(1); });`;
    const out = JSON.parse(
      await clientPod(ns, "client", script, {
        URL: `http://imaging-harmony.${ns}.svc.cluster.local:8080/dicomweb/studies?PatientID=42`,
      }),
    ) as { status: number; body: { upstream: string; url: string } };
    assert.equal(out.status, 200);
    assert.equal(out.body.upstream, "orthanc");
    assert.match(out.body.url, /^\/dicom-web\/studies\?PatientID=42/);
  });

  test("dicom-modality-bridge and jmix-export: Ready", async () => {
    const c = cluster!;
    await c.kubectlOk(["create", "namespace", "ex-bridge"]);
    await applyExample("ex-bridge", "dicom-modality-bridge.yaml", "modality-bridge");
    await c.kubectlOk(["create", "namespace", "ex-jmix"]);
    const keyFile = join(c.dir, "jmix-signing-key.pem");
    execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", keyFile]);
    await c.kubectlOk([
      "-n",
      "ex-jmix",
      "create",
      "secret",
      "generic",
      "jmix-signing",
      `--from-file=signing-key.pem=${keyFile}`,
    ]);
    await applyExample("ex-jmix", "jmix-export.yaml", readGatewayName("jmix-export.yaml"));
  });

  test("sidecar mode: the webhook injects a native sidecar into an app pod, and traffic goes through it", async () => {
    const c = cluster!;
    const ns = "ex-sidecar";
    await c.kubectlOk(["create", "namespace", ns]);
    await c.kubectlOk(
      ["-n", ns, "apply", "-f", "-"],
      `
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyGateway
metadata: {name: edge}
spec: {mode: Sidecar, networks: [{name: web, port: 8080}], management: {port: 9090}}
---
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyEndpoint
metadata: {name: app}
spec: {service: http, pathPrefix: /app}
---
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyPipeline
metadata: {name: app}
spec:
  gatewayRef: {name: edge}
  endpoints: [{name: app}]
  backends: [{service: http, url: "http://127.0.0.1:8000"}]
`,
    );
    await eventually(
      "the sidecar gateway is accepted",
      async () =>
        (
          await c.kubectl([
            "-n",
            ns,
            "get",
            "harmonypipeline/app",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Programmed")].status}',
          ])
        ).stdout === "True",
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await c.kubectlOk(
      ["-n", ns, "apply", "-f", "-"],
      `
apiVersion: v1
kind: Pod
metadata: {name: app, labels: {harmony.runbeam.io/gateway: edge, app: app}}
spec:
  containers:
    - name: app
      image: ${IMAGE}
      imagePullPolicy: Never
      command: [${NODE}, -e, ${JSON.stringify(ECHO)}]
      env: [{name: NAME, value: app}, {name: PORT, value: "8000"}]
      securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`,
    );
    const r = await c.kubectl(["-n", ns, "wait", "--for=condition=Ready", "pod/app", "--timeout=180s"]);
    const pod = JSON.parse(await c.kubectlOk(["-n", ns, "get", "pod", "app", "-o", "json"])) as {
      spec: { initContainers?: { name: string; restartPolicy?: string; image: string }[] };
      status: { podIP: string };
    };
    assert.equal(r.code, 0, `app pod not Ready: ${r.stderr}\n${JSON.stringify(pod.status)}`);
    const sidecar = pod.spec.initContainers?.[0];
    assert.equal(sidecar?.name, "harmony-dataplane");
    assert.equal(sidecar?.restartPolicy, "Always", "a native sidecar");
    assert.equal(sidecar?.image, IMAGE);
    const script = `${FETCH_RETRY}
get(process.env.URL).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.json() })))
  .catch((e) => { console.error(e); process.exit(1); });`;
    const out = JSON.parse(
      await clientPod(ns, "client", script, { URL: `http://${pod.status.podIP}:8080/app/hello` }),
    ) as {
      status: number;
      body: { upstream: string; url: string };
    };
    assert.equal(out.status, 200);
    assert.equal(out.body.upstream, "app");
    assert.equal(out.body.url, "/hello");
  });

  test("the operator pod holding the Lease is deleted: another replica takes it over", async () => {
    const c = cluster!;
    const holderOf = async () =>
      (
        await c.kubectlOk(["-n", NS, "get", "lease", "harmony-operator", "-o", "jsonpath={.spec.holderIdentity}"])
      ).trim();
    const pods = (
      await c.kubectlOk([
        "-n",
        NS,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=harmony",
        "-o",
        "jsonpath={.items[*].metadata.name}",
      ])
    )
      .trim()
      .split(/\s+/);
    const holder = await holderOf();
    const leader = pods.find((p) => holder.startsWith(p));
    const other = pods.find((p) => p !== leader);
    assert.ok(leader && other, `leader ${holder} among ${pods.join(", ")}`);
    // Force-deleted: the API object goes at once and the kubelet stops the container (SIGTERM, then
    // SIGKILL). Measured here: the next holder within ~2 s, so the operator releases on SIGTERM. A
    // crash (SIGKILL only) would make the follower wait the lease out; not covered here.
    await c.kubectlOk(["-n", NS, "delete", "pod", leader, "--grace-period=0", "--force"]);
    // The follower usually wins; the Deployment's replacement pod may race it once the lease expires.
    // Either way a live replica, not the killed one, must lead.
    const next = await eventually(
      "another replica holds the Lease",
      async () => {
        const h = await holderOf();
        return h && !h.startsWith(leader) ? h : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const live = await c.kubectlOk([
      "-n",
      NS,
      "get",
      "pods",
      "-l",
      "app.kubernetes.io/name=harmony",
      "-o",
      "jsonpath={.items[*].metadata.name}",
    ]);
    assert.ok(
      live.split(/\s+/).some((p) => next.startsWith(p)),
      `${next} is a running operator pod (${live})`,
    );
  });
});

/** What the real node changes on the host, in a comparable form (counters and timestamps left out). */
function hostState(): Record<string, string> {
  const sh = (cmd: string) => execFileSync("bash", ["-c", cmd], { encoding: "utf8" });
  return {
    iptables: sh("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'"),
    ip6tables: sh("ip6tables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'"),
    nftTables: sh("nft list tables | sort"),
    sysctls: sh(
      "sysctl -a 2>/dev/null | grep -E '^(vm\\.|kernel\\.panic|net\\.ipv4\\.ip_forward|net\\.ipv4\\.conf\\.all\\.|net\\.bridge\\.)' | sort",
    ),
    links: sh("ip -o link show | awk -F': ' '{print $2}' | sort"),
    netns: sh("ip netns list | sort"),
    mounts: sh("awk '{print $2}' /proc/self/mounts | grep -E 'harmony|netns|containerd' | sort || true"),
  };
}

describe("a real node: an interrupted test process leaves the host as it found it", { skip }, () => {
  test("SIGTERM while pods run: sysctls, iptables, nftables, links, netns and mounts restored", async () => {
    const before = hostState();
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test", "cluster", "fixtures", "hold.ts")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = once(child, "exit");
    await eventually(
      "the held cluster runs a pod",
      () => out.includes("READY") || (child.exitCode !== null && assert.fail("exited early")),
      {
        timeoutMs: 600_000,
        intervalMs: 500,
      },
    );
    const during = hostState();
    assert.notDeepEqual(during.links, before.links, "the bridge and veths exist while it runs");
    child.kill("SIGTERM");
    const [code, signal] = (await exited) as [number | null, string | null];
    assert.ok(code !== 0 || signal === "SIGTERM", "ended by the signal");
    assert.deepEqual(hostState(), before);
  });
});

function readGatewayName(file: string): string {
  const m = /kind: HarmonyGateway\nmetadata:\n\s+name: (\S+)/.exec(
    readFileSync(join(ROOT, "examples", "kubernetes", file), "utf8"),
  );
  assert.ok(m, `${file} has a HarmonyGateway`);
  return m[1]!;
}
