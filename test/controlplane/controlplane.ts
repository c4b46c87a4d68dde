/**
 * A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver (TLS, a static
 * admin token, RBAC) and optionally kube-controller-manager (garbage collection, namespaces).
 * Binaries come from build.sh (KUBEBUILDER_ASSETS or a cached source build). Everything is
 * stopped by PID; nothing listens beyond 127.0.0.1.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";

const BUILD = fileURLToPath(new URL("./build.sh", import.meta.url));

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  kubeconfig: string;
  server: string;
  token: string;
  binDir: string;
  /** PATH with the control plane's bin dir first and KUBECONFIG set. */
  env: NodeJS.ProcessEnv;
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  restartApiserver(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

export function binDir(): string {
  return execFileSync("bash", [BUILD, "--print-bin-dir"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })
    .trim()
    .split("\n")
    .pop()!;
}

export async function startControlPlane(opts: { controllerManager?: boolean } = {}): Promise<ControlPlane> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), "harmony-cp-"));
  const procs = new Map<string, ChildProcess>();
  const ssl = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  ssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "3",
    "-subj",
    "/CN=harmony-test-ca",
  ]);
  ssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=kube-apiserver",
  ]);
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n");
  ssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "3",
    "-extfile",
    "san.ext",
  ]);
  ssl(["genrsa", "-out", "sa.key", "2048"]);
  ssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
  const token = randomBytes(24).toString("hex");
  writeFileSync(join(dir, "tokens.csv"), `${token},admin,admin-uid,"system:masters"\n`);

  const [etcdClient, etcdPeer, apiPort, kcmPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const server = `https://127.0.0.1:${apiPort}`;
  const ca = readFileSync(join(dir, "ca.crt"));
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: { server, "certificate-authority-data": ca.toString("base64") } }],
      users: [{ name: "admin", user: { token } }],
      contexts: [{ name: "test", context: { cluster: "test", user: "admin" } }],
      "current-context": "test",
    }),
  );

  const start = (name: string, cmd: string, args: string[]) => {
    const log = openSync(join(dir, `${name}.log`), "a");
    const p = spawn(join(bin, cmd), args, { stdio: ["ignore", log, log] });
    closeSync(log);
    procs.set(name, p);
    return p;
  };
  const logTail = (name: string) => {
    try {
      return readFileSync(join(dir, `${name}.log`), "utf8")
        .split("\n")
        .slice(-30)
        .join("\n");
    } catch {
      return "";
    }
  };

  mkdirSync(join(dir, "etcd"));
  start("etcd", "etcd", [
    "--name=default",
    `--data-dir=${join(dir, "etcd")}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
    "--log-level=warn",
  ]);

  const apiserverArgs = [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${apiPort}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${join(dir, "server.crt")}`,
    `--tls-private-key-file=${join(dir, "server.key")}`,
    `--client-ca-file=${join(dir, "ca.crt")}`,
    `--token-auth-file=${join(dir, "tokens.csv")}`,
    "--authorization-mode=RBAC",
    `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
    `--service-account-key-file=${join(dir, "sa.pub")}`,
    `--service-account-signing-key-file=${join(dir, "sa.key")}`,
    "--service-cluster-ip-range=10.0.0.0/24",
    "--allow-privileged=true",
    // No kubelet, no service-account token controller: pods must not need a ServiceAccount.
    "--disable-admission-plugins=ServiceAccount",
    "--enable-priority-and-fairness=false",
  ];
  const startApiserver = async () => {
    start("kube-apiserver", "kube-apiserver", apiserverArgs);
    await waitReady(
      server,
      token,
      ca,
      () => procs.get("kube-apiserver")!,
      () => logTail("kube-apiserver"),
    );
  };

  const stopProc = async (name: string) => {
    const p = procs.get(name);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
    await once(p, "exit");
    clearTimeout(t);
  };

  const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}`, KUBECONFIG: kubeconfig };
  const cp: ControlPlane = {
    kubeconfig,
    server,
    token,
    binDir: bin,
    env,
    kubectl: (args, input) => runKubectl(args, kubeconfig, env, input),
    async restartApiserver() {
      await stopProc("kube-apiserver");
      await startApiserver();
    },
    async stop() {
      for (const name of ["kube-controller-manager", "kube-apiserver", "etcd"]) await stopProc(name);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await startApiserver();
    if (opts.controllerManager) {
      start("kube-controller-manager", "kube-controller-manager", [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        "--controllers=garbagecollector,namespace",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        "--bind-address=127.0.0.1",
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, "kcm")}`,
      ]);
    }
  } catch (e) {
    await cp.stop();
    throw e;
  }
  return cp;
}

function runKubectl(
  args: string[],
  kubeconfig: string,
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const p = spawn("kubectl", ["--kubeconfig", kubeconfig, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    p.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(input ?? "");
  });
}

async function waitReady(
  server: string,
  token: string,
  ca: Buffer,
  proc: () => ChildProcess,
  tail: () => string,
): Promise<void> {
  const end = Date.now() + 90_000;
  while (Date.now() < end) {
    if (proc().exitCode !== null) throw new Error(`kube-apiserver exited (${proc().exitCode}):\n${tail()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(
        `${server}/readyz`,
        { ca, headers: { authorization: `Bearer ${token}` }, timeout: 2000 },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        },
      );
      req.on("error", () => resolve(false));
      req.on("timeout", () => {
        req.destroy();
        resolve(false);
      });
      req.end();
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`kube-apiserver not ready after 90 s:\n${tail()}`);
}
