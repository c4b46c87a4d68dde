/**
 * Policy rule types (Harmony's documented set). A rule looks at a request and says allow, deny or
 * nothing; rate_limit also says how much is left. Each type validates its own options at load.
 */
import type { RequestContext } from "../pipeline/context.js";
import { cidrList, matches } from "./client-ip.js";
import type { RateLimiter } from "./rate-limit.js";
import { canonicalLiteral } from "../pipeline/canonical-path.js";

export type Verdict = "allow" | "deny" | "none";

export interface RuleInput {
  ctx: RequestContext;
  ip: string;
  now: Date;
}

export interface Rule {
  id: string;
  type: string;
  weight: number;
  evaluate(i: RuleInput): Verdict;
}

export class RuleError extends Error {}

type Opts = Record<string, unknown>;
const mode = (o: Opts): "allow" | "deny" => {
  const m = o.mode ?? "allow";
  if (m !== "allow" && m !== "deny") throw new RuleError(`mode must be "allow" or "deny", not ${JSON.stringify(m)}`);
  return m;
};
const strings = (o: Opts, key: string, required = true): string[] => {
  const v = o[key];
  if (v === undefined && !required) return [];
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string"))
    throw new RuleError(`${key} must be a non-empty list of strings`);
  return v;
};
const on = (hit: boolean, m: "allow" | "deny"): Verdict => (hit ? m : "none");

/**
 * A path pattern (`/Patient/{id}`, `/api/{*rest}`, matchit syntax) for a whole canonical path.
 * Literal parts are put in canonical form too (pipeline/canonical-path.ts), so `/é` matches the
 * `/%C3%A9` a client sends; with case-insensitive paths the second expression is used.
 */
export class PathPattern {
  private readonly exact: RegExp;
  private readonly anyCase: RegExp;
  constructor(readonly source: string) {
    if (!source.startsWith("/")) throw new RuleError(`path pattern "${source}" must start with /`);
    const re = source
      .split(/(\{\*?[A-Za-z_][A-Za-z0-9_]*\})/)
      .map((part) =>
        part.startsWith("{*")
          ? ".*"
          : part.startsWith("{")
            ? "[^/]+"
            : canonicalLiteral(part).replace(/[.*+?^$()|[\]\\]/g, "\\$&"),
      )
      .join("");
    this.exact = new RegExp(`^${re}$`);
    this.anyCase = new RegExp(`^${re}$`, "i");
  }

  /** `path` is canonical; `caseInsensitive` is proxy.path_normalization.case_insensitive. */
  test(path: string, caseInsensitive: boolean): boolean {
    return (caseInsensitive ? this.anyCase : this.exact).test(path);
  }
}

export const pathPattern = (p: string): PathPattern => new PathPattern(p);

/** "/re/flags" or a plain string (matched as a substring, case-insensitively). */
function userRegex(p: string): RegExp {
  const m = /^\/(.*)\/([a-z]*)$/.exec(p);
  try {
    return m ? new RegExp(m[1]!, m[2]) : new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i");
  } catch (e) {
    throw new RuleError(`bad pattern ${p}: ${(e as Error).message}`);
  }
}

function matcher(t: unknown, value: unknown): (actual: string | undefined) => boolean {
  const type = t ?? "exact";
  if (type === "exists") return (a) => a !== undefined;
  if (typeof value !== "string") throw new RuleError(`value is required for match_type ${JSON.stringify(type)}`);
  if (type === "exact") return (a) => a !== undefined && a.toLowerCase() === value.toLowerCase();
  if (type === "contains") return (a) => a !== undefined && a.toLowerCase().includes(value.toLowerCase());
  if (type === "regex") {
    const re = userRegex(value.startsWith("/") ? value : `/${value}/`);
    return (a) => a !== undefined && re.test(a);
  }
  throw new RuleError(`match_type must be exists, exact, contains or regex, not ${JSON.stringify(type)}`);
}

const DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

function timeBased(o: Opts): (now: Date) => boolean {
  const tz = typeof o.timezone === "string" ? o.timezone : "UTC";
  let fmt: Intl.DateTimeFormat;
  try {
    fmt = new Intl.DateTimeFormat("en-GB", {
      timeZone: tz,
      hourCycle: "h23",
      weekday: "long",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
    });
  } catch {
    throw new RuleError(`unknown time zone ${tz}`);
  }
  const hhmm = (k: string) => {
    const v = o[k];
    if (v === undefined) return undefined;
    const m = typeof v === "string" ? /^([01]\d|2[0-3]):([0-5]\d)$/.exec(v) : null;
    if (!m) throw new RuleError(`${k} must be HH:MM`);
    return Number(m[1]) * 60 + Number(m[2]);
  };
  const ymd = (k: string) => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(v)) throw new RuleError(`${k} must be YYYY-MM-DD`);
    return v;
  };
  const start = hhmm("start_time");
  const end = hhmm("end_time");
  const from = ymd("start_date");
  const to = ymd("end_date");
  const days = o.days_of_week === undefined ? undefined : strings(o, "days_of_week").map((d) => d.toLowerCase());
  for (const d of days ?? []) if (!DAYS.includes(d)) throw new RuleError(`unknown day ${d}`);
  return (now) => {
    const p = Object.fromEntries(fmt.formatToParts(now).map((x) => [x.type, x.value]));
    const minutes = Number(p.hour) * 60 + Number(p.minute);
    const date = `${p.year}-${p.month}-${p.day}`;
    if (days && !days.includes(String(p.weekday).toLowerCase())) return false;
    if (from && date < from) return false;
    if (to && date > to) return false;
    if (start !== undefined && end !== undefined) {
      // A window that wraps midnight (22:00–06:00) is two pieces.
      return start <= end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
    }
    if (start !== undefined && minutes < start) return false;
    if (end !== undefined && minutes >= end) return false;
    return true;
  };
}

export function makeRule(
  id: string,
  type: string,
  weight: number,
  o: Opts,
  limiter: (max: number, windowS: number) => RateLimiter,
): Rule & { limiter?: RateLimiter } {
  const rule = (evaluate: (i: RuleInput) => Verdict) => ({ id, type, weight, evaluate });
  switch (type) {
    case "allow_all":
      return rule(() => "allow");
    case "deny_all":
      return rule(() => "deny");
    case "ip_allow":
    case "ip_deny": {
      const { list, bad } = cidrList(strings(o, "ip_addresses"));
      if (bad.length) throw new RuleError(`not addresses or CIDRs: ${bad.join(", ")}`);
      const m = type === "ip_allow" ? "allow" : "deny";
      return rule((i) => on(matches(list, i.ip), m));
    }
    case "path": {
      const m = mode(o);
      const res = strings(o, "paths").map(pathPattern);
      // The canonical path (pipeline/canonical-path.ts): every spelling of /admin is /admin here.
      return rule((i) =>
        on(
          res.some((r) => r.test(i.ctx.subpath, i.ctx.caseInsensitivePaths)),
          m,
        ),
      );
    }
    case "method": {
      const m = mode(o);
      const methods = new Set(strings(o, "methods").map((x) => x.toUpperCase()));
      return rule((i) => on(methods.has(i.ctx.method), m));
    }
    case "header": {
      const m = mode(o);
      const list = o.headers;
      if (!Array.isArray(list) || list.length === 0) throw new RuleError("headers must be a non-empty list");
      const checks = (list as Opts[]).map((h) => {
        if (typeof h.name !== "string") throw new RuleError("each header needs a name");
        const name = h.name.toLowerCase();
        const f = matcher(h.match_type, h.value);
        return (i: RuleInput) => {
          const v = i.ctx.req.headers[name];
          return f(Array.isArray(v) ? v.join(", ") : v);
        };
      });
      return rule((i) =>
        on(
          checks.every((c) => c(i)),
          m,
        ),
      );
    }
    case "query_parameter": {
      const m = mode(o);
      const list = o.parameters;
      if (!Array.isArray(list) || list.length === 0) throw new RuleError("parameters must be a non-empty list");
      const checks = (list as Opts[]).map((q) => {
        if (typeof q.name !== "string") throw new RuleError("each parameter needs a name");
        const name = q.name;
        const f = matcher(q.match_type, q.value);
        return (params: URLSearchParams) => f(params.get(name) ?? undefined);
      });
      return rule((i) => {
        const params = new URLSearchParams(i.ctx.search);
        return on(
          checks.every((c) => c(params)),
          m,
        );
      });
    }
    case "user_agent": {
      const m = mode(o);
      const list = o.patterns;
      if (!Array.isArray(list) || list.length === 0) throw new RuleError("patterns must be a non-empty list");
      const res = (list as (Opts | string)[]).map((p) => userRegex(typeof p === "string" ? p : String(p.pattern)));
      return rule((i) => {
        const ua = i.ctx.req.headers["user-agent"] ?? "";
        return on(
          res.some((r) => r.test(ua)),
          m,
        );
      });
    }
    case "content_type": {
      const m = mode(o);
      const types = strings(o, "content_types").map((t) => t.toLowerCase());
      return rule((i) => {
        const ct = (i.ctx.req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        if (!ct) return "none";
        return on(
          types.some((t) => (t.endsWith("/*") ? ct.startsWith(t.slice(0, -1)) : ct === t)),
          m,
        );
      });
    }
    case "geo": {
      const m = mode(o);
      const codes = new Set(strings(o, "country_codes").map((c) => c.toUpperCase()));
      for (const c of codes) if (!/^[A-Z]{2}$/.test(c)) throw new RuleError(`${c} is not an ISO 3166 alpha-2 code`);
      // The country comes from whoever in front of us geolocates (a CDN or ingress header).
      const header = typeof o.country_header === "string" ? o.country_header.toLowerCase() : "x-country-code";
      return rule((i) => {
        const v = i.ctx.req.headers[header];
        const c = (Array.isArray(v) ? v[0] : v)?.toUpperCase();
        return on(c !== undefined && codes.has(c), m);
      });
    }
    case "time_based": {
      const inside = timeBased(o);
      const during = o.allow_during_window !== false;
      return rule((i) => (inside(i.now) === during ? "allow" : "deny"));
    }
    case "rate_limit": {
      const max = o.max_requests;
      const win = o.window_seconds;
      if (!Number.isInteger(max) || (max as number) < 1) throw new RuleError("max_requests must be a positive integer");
      if (!Number.isInteger(win) || (win as number) < 1)
        throw new RuleError("window_seconds must be a positive integer");
      const l = limiter(max as number, win as number);
      return { ...rule((i) => (l.hit(i.ip, i.now.getTime()).allowed ? "none" : "deny")), limiter: l };
    }
    default:
      throw new RuleError(`unknown rule type "${type}"`);
  }
}
