/**
 * `policies`: access rules evaluated the documented way: every enabled rule of every enabled
 * policy is evaluated (by weight, highest first); any deny → 403, no allow at all → 403 (implicit
 * deny), otherwise the request goes on. A deny from a rate_limit rule alone is a 429 with
 * Retry-After; rate-limited routes also carry RateLimit-Limit/-Remaining/-Reset.
 *
 * Policies are written inline (`policies = [{ rules = [{ type = "ip_allow", ... }] }]`) or by
 * reference (`policies = ["corp"]` → `[policies.corp] rules = ["office"]` → `[rules.office]`).
 */
import { Type, type Static } from "@sinclair/typebox";
import type { BuildContext, MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { cidrList, clientIp } from "../policy/client-ip.js";
import { RateLimiter } from "../policy/rate-limit.js";
import { RuleError, makeRule, type Rule } from "../policy/rules.js";

const Options = Type.Object(
  {
    policies: Type.Array(Type.Union([Type.String(), Type.Record(Type.String(), Type.Unknown())]), {
      minItems: 1,
      description: "Policy ids (tables under [policies]) or inline policies.",
    }),
    trusted_proxies: Type.Array(Type.String(), {
      default: [],
      description: "CIDRs of proxies in front whose X-Forwarded-For is believed.",
    }),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;
type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === "object" && v !== null && !Array.isArray(v);

function compile(
  o: Options,
  ctx: BuildContext,
): { rules: (Rule & { limiter?: RateLimiter })[]; problems: OptionProblem[] } {
  const problems: OptionProblem[] = [];
  const rules: (Rule & { limiter?: RateLimiter })[] = [];
  const policyTables = ctx.table("policies");
  const ruleTables = ctx.table("rules");
  const limiter = (id: string) => (max: number, windowS: number) =>
    ctx.resources.acquire(`rate-limit:${ctx.name}:${id}:${max}:${windowS}`, () => new RateLimiter(max, windowS));

  o.policies.forEach((p, i) => {
    const policy = typeof p === "string" ? policyTables[p] : p;
    if (!isTable(policy)) {
      problems.push({ path: ["policies", i], message: `policy ${JSON.stringify(p)} is not defined under [policies]` });
      return;
    }
    if (policy.enabled === false) return;
    const list = policy.rules;
    if (!Array.isArray(list) || list.length === 0) {
      problems.push({ path: ["policies", i, "rules"], message: "a policy needs a non-empty rules list" });
      return;
    }
    (list as unknown[]).forEach((r, j) => {
      const at = typeof p === "string" ? ["policies", i, `rules[${j}]`] : ["policies", i, "rules", j];
      const rule = typeof r === "string" ? ruleTables[r] : r;
      if (!isTable(rule)) {
        problems.push({ path: at, message: `rule ${JSON.stringify(r)} is not defined under [rules]` });
        return;
      }
      if (rule.enabled === false) return;
      const id = typeof r === "string" ? r : typeof rule.id === "string" ? rule.id : `${i}.${j}`;
      const options = { ...rule, ...(isTable(rule.options) ? rule.options : {}) };
      const weight = typeof rule.weight === "number" ? rule.weight : 0;
      try {
        if (typeof rule.type !== "string") throw new RuleError("type is required");
        rules.push(makeRule(id, rule.type, weight, options, limiter(id)));
      } catch (e) {
        if (!(e instanceof RuleError)) throw e;
        problems.push({ path: at, message: `rule "${id}": ${e.message}` });
      }
    });
  });
  const { bad } = cidrList(o.trusted_proxies);
  if (bad.length) problems.push({ path: ["trusted_proxies"], message: `not addresses or CIDRs: ${bad.join(", ")}` });
  rules.sort((a, b) => b.weight - a.weight);
  return { rules, problems };
}

export const policies: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "policies",
  options: Options,
  check: (o, ctx) => compile(o, ctx).problems,
  create: (o, ctx) => {
    const { rules } = compile(o, ctx);
    const trusted = o.trusted_proxies.length ? cidrList(o.trusted_proxies).list : undefined;
    const limited = rules.filter((r) => r.limiter);
    return {
      onRequest(rctx) {
        const ip = clientIp(rctx.clientAddress, rctx.req.headers["x-forwarded-for"], trusted);
        const now = new Date();
        let allowed = false;
        const denied: Rule[] = [];
        for (const r of rules) {
          const v = r.evaluate({ ctx: rctx, ip, now });
          if (v === "allow") allowed = true;
          else if (v === "deny") denied.push(r);
        }
        // The tightest rate limit speaks for the route, allowed or not.
        const states = limited.map((r) => r.limiter!.peek(ip, now.getTime())).filter((s) => s !== undefined);
        const tightest = states.sort((a, b) => a.remaining - b.remaining)[0];
        if (tightest) {
          rctx.res.setHeader("ratelimit-limit", String(tightest.limit));
          rctx.res.setHeader("ratelimit-remaining", String(tightest.remaining));
          rctx.res.setHeader("ratelimit-reset", String(tightest.resetS));
        }
        if (denied.length && denied.every((r) => r.type === "rate_limit")) {
          throw new HttpError(429, "rate limit exceeded", {
            type: problemType("rate-limited"),
            headers: { "retry-after": String(tightest?.resetS ?? 1) },
          });
        }
        if (denied.length) {
          ctx.logger.info("request denied by policy", { request_id: rctx.id, rule: denied[0]!.id, client: ip });
          throw new HttpError(403, `denied by rule "${denied[0]!.id}"`, { type: problemType("policy-denied") });
        }
        if (!allowed) throw new HttpError(403, "no rule allows this request", { type: problemType("policy-denied") });
      },
    };
  },
};
