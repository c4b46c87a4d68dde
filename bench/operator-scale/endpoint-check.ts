/**
 * bench/operator-scale/endpoint-check: CPU per HarmonyEndpoint check (translator/endpoint.ts), the
 * check every new or edited endpoint gets once (10,000 as 10,000 endpoints arrive).
 *
 *   node --import tsx bench/operator-scale/endpoint-check.ts        # N=2000
 */
import type { HarmonyEndpoint } from "../../operator/src/api/v1alpha1.js";
import { checkEndpoint } from "../../operator/src/translator/endpoint.js";

const N = Number(process.env.N ?? 2000);
const ep = (i: number) =>
  ({
    metadata: { name: `ep-${i}`, namespace: "scale", uid: `u${i}`, generation: 1 },
    spec: { service: "http", pathPrefix: `/p${i}` },
  }) as unknown as HarmonyEndpoint;
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
for (let i = 0; i < 100; i++) checkEndpoint(ep(i)); // warm-up
const c0 = cpuMs();
for (let i = 0; i < N; i++) if (!checkEndpoint(ep(i)).ok) throw new Error("refused");
const per = (cpuMs() - c0) / N;
process.stdout.write(
  `${N} endpoint checks: ${per.toFixed(3)} ms CPU each (${((per * 10_000) / 1000).toFixed(1)} s per 10,000)\n`,
);
