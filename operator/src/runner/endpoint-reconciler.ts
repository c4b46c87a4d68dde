/**
 * A HarmonyEndpoint's own status: Accepted says whether the data plane takes its options (checked
 * alone, so a typo shows on the endpoint even while no pipeline uses it); Ready says whether any
 * programmed pipeline uses it. Whether traffic flows is for the pipelines and gateways that render it to say.
 */
import { checkEndpoint } from "../translator/endpoint.js";
import { writeStatus, type ReconcilerDeps } from "./gateway-reconciler.js";
import { endpointUri } from "../network/directory.js";

/**
 * Verdicts by endpoint, for the uid and generation they were made for: the check compiles schemas,
 * and a spec that did not change cannot change its verdict. One entry per endpoint, found by key
 * (finding the old one by scanning every key was another 10,000 × 10,000 at 10,000 endpoints).
 */
const verdicts = new Map<string, { version: string; verdict: ReturnType<typeof checkEndpoint> }>();

/**
 * A new endpoint and the pipeline that uses it usually come together (one `kubectl apply`), the
 * endpoint first: reconciled before the pipeline reaches the cache, it was written Unused, then
 * InUse a moment later, two status writes (and two Events) where one says it all. At 1,000 new
 * pairs that was ~500 extra writes. An endpoint with no status yet and no users waits this long
 * from its creation before it is called Unused; a pipeline that arrives meanwhile requeues it.
 */
export const NEW_ENDPOINT_GRACE_MS = 5000;

/** `userNames`: the pipelines in `namespace` that reference this endpoint (endpoint-users.ts). */
export async function reconcileEndpoint(
  deps: ReconcilerDeps,
  namespace: string,
  name: string,
  userNames: readonly string[],
): Promise<{ requeueAfterMs?: number }> {
  const key = `${namespace}/${name}`;
  const ep = deps.caches.endpoints.get(name, namespace);
  if (!ep) {
    verdicts.delete(key);
    return {};
  }
  const version = `${ep.metadata.uid}/${ep.metadata.generation}`;
  const memo = verdicts.get(key);
  const v = memo?.version === version ? memo.verdict : checkEndpoint(ep);
  if (v !== memo?.verdict) verdicts.set(key, { version, verdict: v });
  const users = userNames.map((n) => deps.caches.pipelines.get(n, namespace)).filter((p) => p !== undefined);
  if (v.ok && users.length === 0 && !ep.status?.conditions?.length) {
    const grace = deps.newEndpointGraceMs ?? NEW_ENDPOINT_GRACE_MS;
    // The API server stamps creation to the second: the age is at most a second too long.
    const age = Date.now() - new Date(ep.metadata.creationTimestamp as unknown as string).getTime();
    if (age < grace) return { requeueAfterMs: Math.min(grace, grace - age) };
  }
  // InUse means traffic can reach it: only pipelines some gateway has programmed count. A
  // pipeline's status write is an informer event that requeues its endpoints, so this follows.
  const programmed = users.filter((p) => p.status?.conditions?.find((c) => c.type === "Programmed")?.status === "True");
  // A user no gateway has judged yet (no verdict for its generation) soon will be, and that status
  // write requeues this endpoint. Writing NotProgrammed before it would only be rewritten as InUse
  // a moment later: at 1,000 new pipelines that was a second status write per endpoint.
  const unjudged = users.some((p) => p.status?.observedGeneration !== p.metadata.generation);
  if (v.ok && programmed.length === 0 && unjudged) return {};
  await writeStatus(
    deps,
    ep,
    "harmonyendpoints",
    [
      { type: "Accepted", status: v.ok ? "True" : "False", reason: v.reason, message: v.message },
      !v.ok
        ? { type: "Ready", status: "False", reason: v.reason, message: "not accepted" }
        : programmed.length
          ? {
              type: "Ready",
              status: "True",
              reason: "InUse",
              message: `used by ${users.length} pipeline(s), ${programmed.length} of them programmed`,
            }
          : users.length
            ? {
                type: "Ready",
                status: "False",
                reason: "NotProgrammed",
                message: `used by ${users.length} pipeline(s), none of them programmed into a gateway's config`,
              }
            : { type: "Ready", status: "False", reason: "Unused", message: "no HarmonyPipeline uses this endpoint" },
    ],
    { pipelines: users.length, ...uris(deps, namespace, name, ep.status ?? {}) },
  );
  return {};
}

/**
 * The endpoint's global URI in every network its org (namespace) is a member of; `uri` is the
 * first by network name. Null clears a URI the endpoint no longer has (merge patch).
 */
function uris(
  deps: ReconcilerDeps,
  org: string,
  name: string,
  current: { uri?: string; uris?: string[] },
): { uri?: string | null; uris?: string[] | null } {
  const all = (deps.networks?.ofOrg(org) ?? []).map((rt) => endpointUri(rt.net.spec.domain, org, name));
  if (all.length) return { uri: all[0]!, uris: all };
  return current.uri !== undefined || current.uris !== undefined ? { uri: null, uris: null } : {};
}
