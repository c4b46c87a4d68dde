/**
 * Which pipelines use each endpoint, kept up to date from the pipeline informer's events.
 *
 * An endpoint's status counts the pipelines that use it, and an endpoint's edit re-renders their
 * gateways. Both used to scan every pipeline of the namespace, once per endpoint reconcile and once
 * per endpoint event: at 10,000 pipelines, 10,000 × 10,000 comparisons while they arrived, ~17 % of
 * the operator's CPU (bench/README.md, operator-scale). Here each is a lookup.
 *
 * A pipeline references endpoints by name in its own namespace (`spec.endpoints[].name`). The index
 * is fed every add, update and delete the informer delivers, relists included, so it holds what
 * the cache holds; it keeps names, never objects: the caller reads the current object from the
 * cache (status included) when it needs it.
 */
import type { HarmonyPipeline } from "../api/v1alpha1.js";

type Pipeline = Pick<HarmonyPipeline, "metadata" | "spec">;

export class EndpointUsers {
  /** "namespace/endpoint" → names of the pipelines in that namespace that reference it. */
  private readonly users = new Map<string, Set<string>>();
  /** "namespace/pipeline" → the endpoint names it referenced when last seen. */
  private readonly refs = new Map<string, readonly string[]>();

  /**
   * Records what the pipeline references as of this event. Returns every endpoint name it
   * referenced before or references now: an edit that drops an endpoint changes that endpoint's
   * users too, and a delete changes all of its old ones.
   */
  update(p: Pipeline, verb: "add" | "update" | "delete"): string[] {
    const ns = p.metadata.namespace ?? "";
    const name = p.metadata.name ?? "";
    const key = `${ns}/${name}`;
    const before = this.refs.get(key) ?? [];
    const now = verb === "delete" ? [] : [...new Set((p.spec.endpoints ?? []).map((e) => e.name))];
    // Most events (status writes) change no reference: nothing to move.
    if (before.length === now.length && before.every((e, i) => e === now[i])) return [...now];
    for (const e of before) {
      if (now.includes(e)) continue;
      const set = this.users.get(`${ns}/${e}`);
      set?.delete(name);
      if (set?.size === 0) this.users.delete(`${ns}/${e}`);
    }
    for (const e of now) {
      let set = this.users.get(`${ns}/${e}`);
      if (!set) this.users.set(`${ns}/${e}`, (set = new Set()));
      set.add(name);
    }
    if (now.length) this.refs.set(key, now);
    else this.refs.delete(key);
    return [...new Set([...before, ...now])];
  }

  /** Names of the pipelines in `namespace` that reference endpoint `name`, in no particular order. */
  of(namespace: string, name: string): string[] {
    return [...(this.users.get(`${namespace}/${name}`) ?? [])];
  }
}
