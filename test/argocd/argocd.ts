/**
 * A real Argo CD (test/argocd/build.sh) as host processes against the test control plane: redis,
 * argocd-repo-server, argocd-application-controller and argocd-server (API only, auth off, for the
 * CLI), each on dynamic loopback ports, logging to a file in a temp dir and stopped by PID.
 *
 * No kubelet runs, so nothing of Argo CD's own manifests is deployed: its CRDs, ConfigMaps and
 * Secret are applied to namespace `argocd`, and the components reach the API server through the
 * test's kubeconfig. ARGOCD_FAKE_IN_CLUSTER makes that kubeconfig the in-cluster destination
 * (https://kubernetes.default.svc), which is what Applications written for a real cluster name.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { eventually, freePort, run, type RunResult } from "../../dataplane/test/helpers.js";
import type { ControlPlane } from "../controlplane/controlplane.js";

const BUILD_SCRIPT = fileURLToPath(new URL("./build.sh", import.meta.url));
const STOP_GRACE_MS = 10_000;
const START_TIMEOUT_MS = 120_000;

export interface ArgoCd {
  /** host:port of argocd-server (plaintext gRPC/HTTP, auth disabled). */
  server: string;
  /** The cache directory of build.sh (bin/, crds/, config/, hack/). */
  home: string;
  /** Runs the argocd CLI against `server`; never rejects on a non-zero exit. */
  cli(args: string[]): Promise<RunResult>;
  /** The last lines of a component's log (redis, repo-server, controller, server). */
  tail(name: string, lines?: number): string;
  /** Stops every component (SIGTERM, then SIGKILL) and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

let homePromise: Promise<string> | undefined;

/** The Argo CD cache directory; builds it the first time. */
export function argocdHome(): Promise<string> {
  homePromise ??= new Promise<string>((resolve, reject) => {
    const p = spawn("bash", [BUILD_SCRIPT, "--print-dir"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    p.on("error", reject);
    p.on("close", (code) => {
      const dir = out.trim().split("\n").pop() ?? "";
      if (code === 0 && dir) resolve(dir);
      else reject(new Error(`bash ${BUILD_SCRIPT} --print-dir failed (exit ${code}); see its output above`));
    });
  });
  homePromise.catch(() => (homePromise = undefined));
  return homePromise;
}

interface Proc {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

const running = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null;

/** Installs Argo CD's CRDs and config into `cp` and starts its components. */
export async function startArgoCd(cp: ControlPlane, opts: { argocdCm?: Record<string, string> } = {}): Promise<ArgoCd> {
  const home = await argocdHome();
  const bin = join(home, "bin");
  const dir = mkdtempSync(join(tmpdir(), "harmony-argocd-"));
  const procs: Proc[] = [];
  const killAll = () => {
    for (const p of procs) if (running(p)) p.child.kill("SIGKILL");
  };
  process.on("exit", killAll);
  const tail = (name: string, lines = 40) => {
    try {
      return readFileSync(join(dir, `${name}.log`), "utf8")
        .trimEnd()
        .split("\n")
        .slice(-lines)
        .join("\n");
    } catch {
      return "(no log)";
    }
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // The controller and the server first: they hold connections to the repo-server and redis.
    for (const p of [...procs].reverse()) {
      if (!running(p)) continue;
      p.child.kill("SIGTERM");
      const t = setTimeout(() => p.child.kill("SIGKILL"), STOP_GRACE_MS);
      await p.exited;
      clearTimeout(t);
    }
    process.off("exit", killAll);
    rmSync(dir, { recursive: true, force: true });
  };
  const env: NodeJS.ProcessEnv = {
    ...cp.env,
    // hack/ holds git-verify-wrapper.sh, which the repo-server runs for every manifest generation;
    // the control plane's bin dir holds helm.
    PATH: `${join(home, "hack")}:${bin}:${cp.env.PATH ?? ""}`,
    // helm's and git's caches and config, and the repo-server's checkouts, stay in the temp dir
    HOME: dir,
    TMPDIR: dir,
    ARGOCD_FAKE_IN_CLUSTER: "true",
    ARGOCD_GPG_ENABLED: "false",
  };
  const start = (name: string, exe: string, args: string[]) => {
    const fd = openSync(join(dir, `${name}.log`), "a");
    const child = spawn(join(bin, exe), args, { stdio: ["ignore", fd, fd], env, cwd: dir });
    closeSync(fd);
    const p: Proc = { name, child, exited: new Promise((r) => child.once("exit", () => r())) };
    child.once("error", () => undefined); // a missing binary shows as an exit below
    procs.push(p);
    return p;
  };
  const ready = (p: Proc, what: string, probe: () => Promise<boolean>) =>
    eventually(
      `${p.name}: ${what}`,
      async () => {
        if (!running(p)) throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode})`);
        return probe();
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 300, context: () => `${p.name}.log:\n${tail(p.name)}` },
    );
  const kubectl = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };

  try {
    // Argo CD's own resources. Its CRDs are too large for a client-side apply's annotation.
    await kubectl(["apply", "--server-side", "-f", join(home, "crds")]);
    await kubectl(["create", "namespace", "argocd"]);
    await kubectl(["apply", "-n", "argocd", "-f", join(home, "config")]);
    // `kubectl wait` fails outright while a new CRD has no conditions yet: ask again.
    await eventually(
      "Argo CD's CRDs Established",
      async () =>
        (
          await cp.kubectl([
            "wait",
            "--for=condition=Established",
            "--timeout=10s",
            "crd/applications.argoproj.io",
            "crd/appprojects.argoproj.io",
          ])
        ).code === 0,
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    if (opts.argocdCm) {
      await kubectl([
        "patch",
        "configmap",
        "argocd-cm",
        "-n",
        "argocd",
        "--type=merge",
        "-p",
        JSON.stringify({ data: opts.argocdCm }),
      ]);
    }
    // The default project (argocd-server creates it too, but the controller may look first).
    await kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "argoproj.io/v1alpha1",
        kind: "AppProject",
        metadata: { name: "default", namespace: "argocd" },
        spec: {
          sourceRepos: ["*"],
          destinations: [{ server: "*", namespace: "*" }],
          clusterResourceWhitelist: [{ group: "*", kind: "*" }],
        },
      }),
    );

    const redisPort = await freePort();
    const repoPort = await freePort();
    const repoMetrics = await freePort();
    const ctrlMetrics = await freePort();
    const serverPort = await freePort();
    const serverMetrics = await freePort();
    const redisAddr = `127.0.0.1:${redisPort}`;
    const repoAddr = `127.0.0.1:${repoPort}`;

    const redis = start("redis", "redis-server", [
      "--port",
      String(redisPort),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ]);
    await ready(redis, "PING", () => redisPing(redisPort));

    const repo = start("repo-server", "argocd-repo-server", [
      "--address",
      "127.0.0.1",
      "--port",
      String(repoPort),
      "--metrics-address",
      "127.0.0.1",
      "--metrics-port",
      String(repoMetrics),
      "--redis",
      redisAddr,
      "--disable-tls",
      "--client-ca-path",
      "", // with --disable-tls: the default path does not exist outside a pod
      "--loglevel",
      "info",
    ]);
    await ready(repo, `/healthz on :${repoMetrics}`, () => httpOk(`http://127.0.0.1:${repoMetrics}/healthz`));

    const common = ["--kubeconfig", cp.kubeconfig, "--namespace", "argocd", "--redis", redisAddr];
    const repoClient = ["--repo-server", repoAddr, "--repo-server-plaintext"];
    // Its metrics listener binds every interface (there is no address flag); the port is dynamic.
    const controller = start("controller", "argocd-application-controller", [
      ...common,
      ...repoClient,
      "--metrics-port",
      String(ctrlMetrics),
      "--status-processors",
      "2",
      "--operation-processors",
      "2",
      "--loglevel",
      "info",
    ]);
    await ready(controller, `/healthz on :${ctrlMetrics}`, () => httpOk(`http://127.0.0.1:${ctrlMetrics}/healthz`));

    const server = start("server", "argocd-server", [
      ...common,
      ...repoClient,
      "--address",
      "127.0.0.1",
      "--port",
      String(serverPort),
      "--metrics-address",
      "127.0.0.1",
      "--metrics-port",
      String(serverMetrics),
      "--insecure",
      "--disable-auth",
      "--staticassets",
      join(dir, "no-ui"),
      "--loglevel",
      "info",
    ]);
    await ready(server, `/healthz on :${serverPort}`, () => httpOk(`http://127.0.0.1:${serverPort}/healthz`));

    // A config file that does not exist: the CLI then takes everything from its flags (an empty one
    // is an error) and never reads or writes ~/.config/argocd.
    const cliConfig = join(dir, "cli-config");
    return {
      server: `127.0.0.1:${serverPort}`,
      home,
      cli: (args) =>
        run(
          join(bin, "argocd"),
          [...args, "--server", `127.0.0.1:${serverPort}`, "--plaintext", "--config", cliConfig],
          {
            env,
          },
        ),
      tail,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let out = "";
    s.setTimeout(2000, () => s.destroy());
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      out += d.toString("latin1");
      if (out.includes("\r\n")) s.end();
    });
    s.on("close", () => resolve(out.startsWith("+PONG")));
    s.on("error", () => resolve(false));
  });
}

async function httpOk(url: string): Promise<boolean> {
  const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
  await r.arrayBuffer();
  return r.ok;
}
