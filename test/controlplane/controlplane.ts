/**
 * A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver (TLS, a static admin
 * token in `system:masters`, RBAC) and optionally kube-controller-manager (garbage collection and
 * namespace deletion). The binaries come from build.sh (KUBEBUILDER_ASSETS, or a source build cached
 * outside the repository). Every process listens on 127.0.0.1 only, logs to a file in a temp dir and
 * is stopped by PID; a start failure throws with the tail of the failing process's log.
 *
 *   const cp = await startControlPlane({ controllerManager: true });
 *   await cp.kubectl(["get", "ns"]);
 *   await cp.stop();
 *
 * HARMONY_CONTROLPLANE_KEEP=1 keeps the temp dir (certificates, kubeconfig, logs, etcd data) after
 * stop() and prints where it is.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, run as runCommand } from "../../dataplane/test/helpers.js";

export { freePort };

const CRDS_DIR = fileURLToPath(new URL("../../crds", import.meta.url));
const CRD_NAMES = ["harmonygateways", "harmonypipelines", "harmonyendpoints", "harmonynetworks"].map(
  (k) => `${k}.harmony.runbeam.io`,
);
/** The Gateway API CRDs (standard channel), vendored: installed only by the tests that use them. */
const GATEWAY_API_CRDS_DIR = fileURLToPath(new URL("../../crds/gateway-api", import.meta.url));
const GATEWAY_API_KINDS = ["gatewayclasses", "gateways", "httproutes", "referencegrants"].map(
  (k) => `${k}.gateway.networking.k8s.io`,
);
const BUILD_SCRIPT = fileURLToPath(new URL("./build.sh", import.meta.url));
const STOP_GRACE_MS = 10_000;
const READY_TIMEOUT_MS = 90_000;

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  /** Path of a kubeconfig (token auth, CA data) for the admin user. */
  kubeconfig: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** Bearer token of the admin user (group system:masters). */
  token: string;
  /** PEM of the CA that signed the apiserver's serving certificate. */
  caPem: string;
  binDir: string;
  /** Directory holding certificates, kubeconfig, logs (`<process>.log`) and etcd data. */
  dir: string;
  /** process.env with the bin dir first on PATH and KUBECONFIG set. */
  env: NodeJS.ProcessEnv;
  /** Runs `kubectl --kubeconfig <kubeconfig> ...args` (kubectl from `env.PATH`); never rejects on a non-zero exit. */
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  /** Applies crds/ (server-side) and waits until the API server serves all three kinds. */
  installCrds(): Promise<void>;
  /** Applies crds/gateway-api/ (server-side) and waits until the API server serves the core kinds. */
  installGatewayApiCrds(): Promise<void>;
  /** Stops kube-apiserver only and starts it again on the same port with the same flags; resolves once /readyz is ok. */
  restartApiserver(): Promise<void>;
  /** Stops every process (SIGTERM, then SIGKILL) and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager (garbagecollector and namespace controllers). */
  controllerManager?: boolean;
  /**
   * Further kube-controller-manager controllers, e.g. ["deployment"] so that Deployments get a
   * status (no pods ever run: there is no kubelet). Implies controllerManager.
   */
  extraControllers?: string[];
}

let binDirPromise: Promise<string> | undefined;

/** The directory with kube-apiserver, kube-controller-manager, etcd and helm; builds them the first time. */
export function binDir(): Promise<string> {
  binDirPromise ??= new Promise<string>((resolve, reject) => {
    // The build's progress goes to our stderr; only the bin dir comes on stdout.
    const p = spawn("bash", [BUILD_SCRIPT, "--print-bin-dir"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    p.on("error", reject);
    p.on("close", (code) => {
      const dir = out.trim().split("\n").pop() ?? "";
      if (code === 0 && dir) resolve(dir);
      else reject(new Error(`bash ${BUILD_SCRIPT} --print-bin-dir failed (exit ${code}); see its output above`));
    });
  });
  binDirPromise.catch(() => (binDirPromise = undefined));
  return binDirPromise;
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bin = await binDir();
  // Ports are picked free and then released, so another process can take one in between: retry on
  // a bind failure with fresh ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bin, opts);
    } catch (e) {
      if (attempt >= 3 || !(e instanceof Error) || !/address already in use/i.test(e.message)) throw e;
    }
  }
}

interface Proc {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  failed?: Error;
}

const DIR_PREFIX = "harmony-cp-";
const OWNER_FILE = "owner.json";

/**
 * Removes what a test process killed outright (SIGKILL, OOM) left behind: temp dirs whose owning
 * process is gone, and their etcd/apiserver/controller-manager, killed by the PIDs recorded there
 * (only when /proc shows the PID still runs with that dir on its command line).
 */
function sweepStale(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    try {
      const rec = JSON.parse(readFileSync(join(dir, OWNER_FILE), "utf8")) as { owner: number; pids: number[] };
      if (alive(rec.owner)) continue;
      for (const pid of rec.pids) {
        try {
          if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir)) process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // not ours, still being created, or already removed
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function startOnce(bin: string, opts: ControlPlaneOptions): Promise<ControlPlane> {
  sweepStale();
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  const procs = new Map<string, Proc>();
  const record = () =>
    writeFileSync(
      join(dir, OWNER_FILE),
      JSON.stringify({ owner: process.pid, pids: [...procs.values()].map((p) => p.child.pid).filter(Boolean) }),
    );
  record();
  // Never leave etcd/apiserver behind when the test process exits, or is interrupted, without stop().
  const killAll = () => {
    for (const p of procs.values()) if (running(p)) p.child.kill("SIGKILL");
  };
  const onSignal = (sig: NodeJS.Signals) => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
    process.off(sig, onSignal);
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig); // the default action, as if we had not listened
  };
  process.on("exit", killAll);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const logPath = (name: string) => join(dir, `${name}.log`);
  const tail = (name: string, lines = 40) => {
    try {
      return readFileSync(logPath(name), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  };
  const start = (name: string, args: string[]) => {
    const fd = openSync(logPath(name), "a");
    const child = spawn(join(bin, name), args, { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    const p: Proc = { name, child, exited: Promise.resolve() };
    p.exited = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", (e) => {
        p.failed = e; // e.g. ENOENT: the binary is missing
        resolve();
      });
    });
    procs.set(name, p);
    record();
    return p;
  };
  const stopProc = async (name: string) => {
    const p = procs.get(name);
    if (!p || !running(p)) return;
    p.child.kill("SIGTERM");
    const t = setTimeout(() => p.child.kill("SIGKILL"), STOP_GRACE_MS);
    await p.exited;
    clearTimeout(t);
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const name of ["kube-controller-manager", "kube-apiserver", "etcd"]) await stopProc(name);
    process.off("exit", killAll);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (process.env.HARMONY_CONTROLPLANE_KEEP === "1") {
      rmSync(join(dir, OWNER_FILE), { force: true }); // so that no later sweep removes it
      process.stderr.write(`[controlplane] kept ${dir}\n`);
    } else rmSync(dir, { recursive: true, force: true });
  };

  try {
    const pki = await makePki(dir);
    const [etcdClient, etcdPeer, apiPort, kcmPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "harmony-test", cluster: { server, "certificate-authority-data": b64(pki.caPem) } }],
        users: [{ name: "admin", user: { token: pki.token } }],
        contexts: [{ name: "harmony-test", context: { cluster: "harmony-test", user: "admin" } }],
        "current-context": "harmony-test",
      }),
      { mode: 0o600 },
    );

    mkdirSync(join(dir, "etcd"), { mode: 0o700 });
    const etcd = start("etcd", [
      "--name=harmony-test",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=harmony-test=http://127.0.0.1:${etcdPeer}`,
      "--initial-cluster-state=new",
      "--log-level=warn",
    ]);
    await waitFor(
      etcd,
      `http://127.0.0.1:${etcdClient}/health`,
      () => tail("etcd"),
      async () => {
        const r = await get(`http://127.0.0.1:${etcdClient}/health`, {});
        return r.status === 200 && /"health":\s*"true"/.test(r.body);
      },
    );

    const apiserverArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--token-auth-file=${pki.tokenFile}`,
      "--authorization-mode=RBAC",
      "--anonymous-auth=true", // /readyz, /livez and /version stay readable without a token, as in a real cluster
      `--service-account-issuer=${server}`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      // No kubelet and no token controller run here, so pods must not need a ServiceAccount token.
      "--disable-admission-plugins=ServiceAccount",
      "--profiling=false",
      "--shutdown-watch-termination-grace-period=2s",
    ];
    const startApiserver = async () => {
      const p = start("kube-apiserver", apiserverArgs);
      await waitFor(
        p,
        `${server}/readyz`,
        () => `${tail("kube-apiserver")}\n--- etcd.log ---\n${tail("etcd", 10)}`,
        async () => (await get(`${server}/readyz`, { ca: pki.caPem, token: pki.token })).status === 200,
      );
    };
    await startApiserver();

    if (opts.controllerManager || opts.extraControllers?.length) {
      const kcm = start("kube-controller-manager", [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        // Garbage collection (ownerReferences) and namespace deletion; nothing that needs a kubelet.
        `--controllers=${["garbagecollector", "namespace", ...(opts.extraControllers ?? [])].join(",")}`,
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        "--bind-address=127.0.0.1",
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, "kcm-certs")}`,
        "--profiling=false",
      ]);
      await waitFor(
        kcm,
        `https://127.0.0.1:${kcmPort}/healthz`,
        () => tail("kube-controller-manager"),
        async () => {
          return (await get(`https://127.0.0.1:${kcmPort}/healthz`, { insecure: true })).status === 200;
        },
      );
    }

    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}`, KUBECONFIG: kubeconfig };
    return {
      kubeconfig,
      server,
      token: pki.token,
      caPem: pki.caPem,
      binDir: bin,
      dir,
      env,
      kubectl: (args, input) => run("kubectl", ["--kubeconfig", kubeconfig, ...args], env, input),
      async installCrds() {
        for (const args of [
          ["apply", "--server-side", "-f", CRDS_DIR],
          ["wait", "--for=condition=Established", "--timeout=60s", ...CRD_NAMES.map((n) => `crd/${n}`)],
        ]) {
          const r = await run("kubectl", ["--kubeconfig", kubeconfig, ...args], env);
          if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
        }
      },
      async installGatewayApiCrds() {
        for (const args of [
          ["apply", "--server-side", "-f", GATEWAY_API_CRDS_DIR],
          ["wait", "--for=condition=Established", "--timeout=60s", ...GATEWAY_API_KINDS.map((n) => `crd/${n}`)],
        ]) {
          const r = await run("kubectl", ["--kubeconfig", kubeconfig, ...args], env);
          if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
        }
      },
      async restartApiserver() {
        await stopProc("kube-apiserver");
        await startApiserver();
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function running(p: Proc): boolean {
  return !p.failed && p.child.exitCode === null && p.child.signalCode === null;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it is true; throws with the log tail if the process exits or time runs out. */
async function waitFor(p: Proc, what: string, tail: () => string, probe: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < end) {
    if (!running(p)) {
      throw new Error(
        `${p.name} ${p.failed ? `did not start (${p.failed.message})` : `exited (${p.child.exitCode ?? p.child.signalCode})`} before ${what} was ok; log tail:\n${tail()}`,
      );
    }
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${p.name}: ${what} not ok after ${READY_TIMEOUT_MS / 1000} s; log tail:\n${tail()}`);
}

function get(
  url: string,
  o: { ca?: string; token?: string; insecure?: boolean },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const options = {
      timeout: 2000,
      headers: o.token ? { authorization: `Bearer ${o.token}` } : {},
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.insecure ? { rejectUnauthorized: false } : {}),
    };
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, options, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<KubectlResult> =>
  runCommand(cmd, args, { env, input });

function openssl(dir: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("openssl", args, { cwd: dir }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

interface Pki {
  caCert: string;
  caPem: string;
  serverCert: string;
  serverKey: string;
  saKey: string;
  saPub: string;
  token: string;
  tokenFile: string;
}

/** A CA, a serving certificate for 127.0.0.1/localhost, a service-account key pair and a token file. */
async function makePki(dir: string): Promise<Pki> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await Promise.all([
    openssl(dir, [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "7",
      "-subj",
      "/CN=harmony-test-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]),
    openssl(dir, ["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"]),
    openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key"]),
  ]);
  writeFileSync(
    join(dir, "server.ext"),
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc",
      "",
    ].join("\n"),
  );
  await Promise.all([
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "7",
      "-extfile",
      "server.ext",
      "-out",
      "server.crt",
    ]),
    openssl(dir, ["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]),
  ]);
  const token = randomBytes(24).toString("hex");
  const tokenFile = join(dir, "tokens.csv");
  writeFileSync(tokenFile, `${token},harmony-admin,harmony-admin-uid,"system:masters"\n`, { mode: 0o600 });
  return {
    caCert: join(dir, "ca.crt"),
    caPem: readFileSync(join(dir, "ca.crt"), "utf8"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    saKey: join(dir, "sa.key"),
    saPub: join(dir, "sa.pub"),
    token,
    tokenFile,
  };
}
