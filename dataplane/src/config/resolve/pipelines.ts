/**
 * `[pipelines.*]`: which are served, on which networks, through which endpoints, middleware and
 * backend. A pipeline with an error is not served; one that uses what this build lacks is left
 * out with a warning, never served half-built.
 */
import type { PipelineSection } from "../schema.js";
import type { ResolvedPipeline } from "./model.js";
import { resolveMesh } from "./mesh.js";
import { middlewareChain } from "./middleware-chain.js";
import { verdict, type PipelineScope, type Verdict } from "./pipeline-scope.js";
import { ownListener } from "./plugin.js";

export function resolvePipelines(scope: PipelineScope): ResolvedPipeline[] {
  const pipelines: ResolvedPipeline[] = [];
  for (const [name, p] of Object.entries(scope.doc.pipelines ?? {})) {
    const r = resolvePipeline(scope, name, p);
    if (r) pipelines.push(r);
  }
  return pipelines;
}

function resolvePipeline(scope: PipelineScope, name: string, p: PipelineSection): ResolvedPipeline | undefined {
  const { doc, registry, at } = scope;
  const path = ["pipelines", name];
  if (p.enabled === false) return undefined;
  if (!Array.isArray(p.endpoints)) return undefined; // schema reported it
  const nets = p.networks ?? [];
  const listensOnItsOwn = p.endpoints.some((e) => ownListener(registry, doc.endpoints?.[e]?.service) !== undefined);
  if (nets.length === 0 && !listensOnItsOwn) {
    at([...path, "networks"], "no networks: the pipeline is not served", "warning");
    return undefined;
  }
  if (p.endpoints.length === 0) {
    at([...path, "endpoints"], "no endpoints: the pipeline is not served", "warning");
    return undefined;
  }
  const v = verdict(scope, path);
  const served = checkNetworks(scope, v, path, p.endpoints, nets);
  if (v.ok && !served) return undefined; // only HTTP/3 networks: warned above, nothing to serve
  p.endpoints.forEach((e, i) => {
    if (!doc.endpoints?.[e]) v.err(["endpoints", i], `endpoint "${e}" is not defined`);
    else if (!scope.endpoints.has(e)) v.failed("endpoints", e);
  });
  const backendNames = p.backends ?? [];
  backendNames.forEach((b, i) => {
    if (!doc.backends?.[b]) v.err(["backends", i], `backend "${b}" is not defined`);
    else if (!scope.backends.has(b)) v.failed("backends", b);
  });
  if (backendNames.length > 1)
    at([...path, "backends"], "only the first backend is called; the others are ignored", "warning");

  const chain = middlewareChain(scope, v, p);
  const right = chain.right;
  let left = chain.left;
  // Mesh: ingress verification runs first, egress signing last, on the request side.
  const mesh = resolveMesh(scope, name, p);
  if (mesh === undefined) v.ok = false;
  else {
    left = [...mesh.first, ...left, ...mesh.last];
  }
  if (!v.ok) return undefined;
  if (v.missing.length > 0) {
    at(
      path,
      `not served: it uses ${[...new Set(v.missing)].map((m) => `"${m}"`).join(", ")}, not available in this build`,
      "warning",
    );
    return undefined;
  }
  return {
    name,
    description: p.description ?? "",
    networks: [...nets],
    endpoints: [...p.endpoints],
    backend: backendNames[0],
    left,
    right,
  };
}

/**
 * Each network the pipeline names must exist. A network without an HTTP listener can still carry
 * DIMSE endpoints (tcp_config or their own port); only endpoints that need the HTTP listener make
 * it a problem. True when something of the pipeline is served on them.
 */
function checkNetworks(scope: PipelineScope, v: Verdict, path: string[], endpoints: string[], nets: string[]): boolean {
  const { doc, registry, networks, at } = scope;
  const httpEndpoints = endpoints.filter((e) => !ownListener(registry, doc.endpoints?.[e]?.service));
  let served = httpEndpoints.length < endpoints.length;
  nets.forEach((n, i) => {
    if (!networks.has(n)) v.err(["networks", i], `network "${n}" is not defined`);
    else if (networks.get(n)) served = true;
    else if (httpEndpoints.length > 0 && doc.network?.[n]?.http3)
      at(
        [...path, "networks", i],
        `network "${n}" has only an HTTP/3 listener, which this build does not start; ${httpEndpoints.join(", ")} not served there`,
        "warning",
      );
    else if (httpEndpoints.length > 0)
      v.err(["networks", i], `network "${n}" has no HTTP listener (endpoints ${httpEndpoints.join(", ")} need one)`);
  });
  return served;
}
