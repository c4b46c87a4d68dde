/**
 * The real cert-manager for tests: the controller built by test/certmanager/build.sh (cached), its
 * CRDs installed on a test control plane, and the controller run as a host process against it with
 * --kubeconfig (no leader election; no webhook or cainjector: a CA issuer needs neither).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { ROOT } from "../../dataplane/test/helpers.js";
import type { Cluster } from "../network-env.js";

const BUILD = join(ROOT, "test/certmanager/build.sh");

/** The cache directory (bin/controller, crds/), or why it could not be had (the build's own words). */
export function provideCertManager(): Promise<{ dir: string } | { error: string }> {
  return new Promise((resolve) => {
    const p = spawn("bash", [BUILD, "--print-dir"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    p.stderr.setEncoding("utf8").on("data", (c: string) => {
      err += c;
      process.stderr.write(c); // a cold build takes minutes: show it progressing
    });
    p.on("error", (e) => resolve({ error: String(e) }));
    p.on("close", (code) =>
      resolve(
        code === 0 && out.trim()
          ? { dir: out.trim() }
          : { error: `test/certmanager/build.sh exited ${code}: ${err.trim().split("\n").slice(-5).join(" | ")}` },
      ),
    );
  });
}

export interface CertManager {
  log: () => string;
  stop(): Promise<void>;
}

/** Installs cert-manager's CRDs and starts its controller against the cluster's API server. */
export async function startCertManager(
  c: Cluster,
  dir: string,
  clusterResourceNamespace: string,
): Promise<CertManager> {
  await c.kubectl(["apply", "--server-side", "-f", join(dir, "crds")]);
  await c.kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd/certificates.cert-manager.io",
    "crd/certificaterequests.cert-manager.io",
    "crd/issuers.cert-manager.io",
    "crd/clusterissuers.cert-manager.io",
  ]);
  let log = "";
  const proc: ChildProcess = spawn(
    join(dir, "bin/controller"),
    [
      `--kubeconfig=${c.cp.kubeconfig}`,
      `--cluster-resource-namespace=${clusterResourceNamespace}`,
      // What a CA issuer needs: issuers, the Certificate controllers, the CA signer and the approver
      // (without it every CertificateRequest waits for approval forever). No leader election,
      // metrics or health listeners in this build (main.go): nothing to collide with other runs.
      "--controllers=issuers,clusterissuers,certificates-issuing,certificates-key-manager," +
        "certificates-request-manager,certificates-readiness,certificates-trigger,certificates-revision-manager," +
        "certificaterequests-issuer-ca,certificaterequests-approver",
      "--v=2",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  proc.stdout!.setEncoding("utf8").on("data", (s: string) => (log = (log + s).slice(-200_000)));
  proc.stderr!.setEncoding("utf8").on("data", (s: string) => (log = (log + s).slice(-200_000)));
  return {
    log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        await once(proc, "exit");
      }
    },
  };
}
