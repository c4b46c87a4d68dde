/**
 * `make conformance`: the official Gateway API conformance suite (v1.7.0, profile GATEWAY-HTTP)
 * against the operator on the real node. Builds (or reuses) the suite and its echo-basic images
 * (build.sh) and the product images, brings the node up with all of them imported, installs the
 * chart with the Gateway API CRDs and controller on, creates the GatewayClass, runs the suite, and
 * writes its report to conformance/. The node always goes down at the end.
 *
 * The caller holds the real-node lock (the Makefile wraps this in flock); the suite's run is capped
 * (HARMONY_CONFORMANCE_TIMEOUT, default 17 min) so the node is held about 20 minutes at most.
 *
 * When a test fails, the cluster's state (pod logs, Gateway/HTTPRoute status, Services and
 * EndpointSlices, the operator's log: diagnostics.ts) goes to conformance/diagnostics/<time>/
 * (HARMONY_CONFORMANCE_DIAG overrides the parent directory), printed at the end.
 *
 *   node --import tsx test/gateway-api/conformance.ts --prepare       build only (no lock needed)
 *   node --import tsx test/gateway-api/conformance.ts [extra suite flags, e.g. -run-test=HTTPRouteWeight]
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startCluster } from "../cluster/cluster.js";
import { buildImages, IMAGE_TAG } from "../cluster/images.js";
import { diagnostics } from "./diagnostics.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const OUT_DIR = join(ROOT, "conformance");
const CLASS = "harmony";
const log = (m: string) => process.stderr.write(`[conformance ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

async function main(): Promise<number> {
  log("building the suite and echo-basic (cached)");
  const suiteDir = execFileSync("bash", [join(ROOT, "test/gateway-api/build.sh")], {
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
  })
    .trim()
    .split("\n")
    .pop()!;
  log("building the product images (cached)");
  const images = await buildImages();
  // `make conformance` builds first, outside the real-node lock, so the node is held only to run.
  if (process.argv[2] === "--prepare") return 0;
  log("bringing the node up");
  const cluster = await startCluster({
    images: [
      images.dataplane,
      images.operator,
      join(suiteDir, "echo-basic-v0.1.0.oci.tar"),
      join(suiteDir, "echo-basic-v0.2.0.oci.tar"),
    ],
  });
  try {
    const helm = await cluster.helm([
      "install",
      "harmony",
      join(ROOT, "charts", "harmony"),
      "-n",
      "harmony-system",
      "--create-namespace",
      "--set",
      "gatewayAPI.enabled=true",
      "--set",
      "gatewayAPI.installCRDs=true",
      "--wait",
      "--timeout=180s",
    ]);
    if (helm.code !== 0) throw new Error(`helm install failed:\n${helm.stderr}\n${helm.stdout}`);
    await cluster.kubectlOk(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "gateway.networking.k8s.io/v1",
        kind: "GatewayClass",
        metadata: { name: CLASS },
        spec: { controllerName: "harmony.runbeam.io/gateway-controller" },
      }),
    );
    mkdirSync(OUT_DIR, { recursive: true });
    const report = join(OUT_DIR, "gateway-http-report.yaml");
    const timeout = process.env.HARMONY_CONFORMANCE_TIMEOUT ?? "17m";
    const args = [
      "-test.run=TestConformance",
      "-test.v",
      `-test.timeout=${timeout}`,
      `-gateway-class=${CLASS}`,
      "-conformance-profiles=GATEWAY-HTTP",
      `-report-output=${report}`,
      "-organization=runbeam",
      "-project=harmony",
      "-url=https://github.com/runbeam/harmony",
      `-version=${IMAGE_TAG}`,
      "-contact=https://github.com/runbeam/harmony/issues",
      "-cleanup-base-resources=false",
      ...process.argv.slice(2).filter((a) => a !== "--prepare"),
    ];
    log(`running the suite (${timeout} at most): ${args.join(" ")}`);
    const diagParent = process.env.HARMONY_CONFORMANCE_DIAG ?? join(OUT_DIR, "diagnostics");
    const diag = diagnostics(cluster, join(diagParent, new Date().toISOString().replace(/[:.]/g, "-")));
    const code = await new Promise<number>((resolve) => {
      const p = spawn(join(suiteDir, "conformance.test"), args, {
        env: cluster.env,
        cwd: OUT_DIR,
        stdio: ["ignore", "pipe", "pipe"],
      });
      // Passed through as it comes, and kept with timestamps to line up with the pods' logs.
      for (const [from, to] of [
        [p.stdout, process.stdout],
        [p.stderr, process.stderr],
      ] as const) {
        createInterface({ input: from, crlfDelay: Infinity }).on("line", (l) => {
          to.write(`${l}\n`);
          diag.line(l);
        });
      }
      p.on("close", (c) => resolve(c ?? 1));
    });
    log(`suite exited ${code}; report: ${report}`);
    if (code === 0) diag.discard();
    else {
      await diag.settled();
      await diag.snapshot("end");
      process.stderr.write(`${diag.problems(60)}\n`);
      log(
        `FAILED: the cluster's state (pod logs, Gateway/HTTPRoute status, Services, EndpointSlices) is in ${diag.dir}`,
      );
    }
    return code;
  } finally {
    log("taking the node down");
    await cluster.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`conformance: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
