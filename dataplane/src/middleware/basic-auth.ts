/**
 * `basic_auth`: HTTP Basic (RFC 7617). Users come from `users` (name → bcrypt hash, or a plain
 * password), an htpasswd file (bcrypt `$2y$` lines and `{SHA}` lines), or the original Harmony's
 * single `username`/`password` (each may come from a file or env). Plain passwords are compared
 * through SHA-256 digests with timingSafeEqual, so the comparison takes the same time whatever
 * matches; an unknown user costs a bcrypt round too, so timing does not tell which users exist.
 *
 * bcrypt is slow on purpose, which makes it a lever for denial of service: it runs on a worker
 * pool (auth/bcrypt-pool.ts) so a flood of wrong passwords never stalls the event loop; verified
 * credentials are remembered for `cache_ttl_ms` (auth/credential-cache.ts) so honest clients cost
 * one hash per minute, not one per request; and a client that keeps failing is refused with 429
 * before any hashing (auth/failure-backoff.ts).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import bcrypt from "bcryptjs";
import type { BuildContext, MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { readSecret, secretProps } from "../plugins/secret.js";
import { cidrList, clientIp } from "../policy/client-ip.js";
import { bcryptVerify } from "./auth/bcrypt-pool.js";
import { CredentialCache } from "./auth/credential-cache.js";
import { FailureBackoff } from "./auth/failure-backoff.js";

const Options = Type.Object(
  {
    ...secretProps("username", "The user name (original Harmony form)"),
    ...secretProps("password", "The password (original Harmony form)"),
    users: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: "User → bcrypt hash ($2a$/$2b$/$2y$) or plain password.",
      }),
    ),
    htpasswd_path: Type.Optional(Type.String({ description: "An htpasswd file (bcrypt or {SHA} entries)." })),
    realm: Type.String({ default: "harmony" }),
    token_path: Type.Optional(Type.String({ description: "Accepted for original configs; unused." })),
    cache_ttl_ms: Type.Integer({
      minimum: 0,
      default: 60_000,
      description: "How long verified credentials are remembered (keyed by an HMAC, never stored); 0 disables.",
    }),
    failure_limit: Type.Integer({
      minimum: 0,
      default: 5,
      description:
        "Failed logins from one client before it is refused with 429 (1 s, doubling per further failure); 0 disables.",
    }),
    max_backoff_ms: Type.Integer({
      minimum: 1000,
      default: 60_000,
      description: "Longest a failing client is refused; its failures are forgotten after as long without one.",
    }),
    max_pending: Type.Integer({
      minimum: 1,
      default: 64,
      description: "Verifications of this middleware waiting or running at once; more get 503 with Retry-After.",
    }),
    trusted_proxies: Type.Array(Type.String(), {
      default: [],
      description: "CIDRs of proxies in front whose X-Forwarded-For names the client (for the backoff).",
    }),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

type Check = (password: string) => Promise<boolean>;
const sha256 = (s: string) => createHash("sha256").update(s).digest();
const sha1b64 = (s: string) => createHash("sha1").update(s).digest("base64");
const equal = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);
const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;
/** A real hash to spend time on for unknown users. */
const DUMMY = bcrypt.hashSync("harmony-unknown-user", 10);

function checker(stored: string): Check | undefined {
  if (BCRYPT.test(stored)) {
    const hash = stored.replace(/^\$2y\$/, "$2b$");
    return (p) => bcryptVerify(p, hash);
  }
  if (stored.startsWith("{SHA}")) {
    const want = Buffer.from(stored.slice(5));
    return (p) => Promise.resolve(equal(Buffer.from(sha1b64(p)), want));
  }
  if (/^\$(apr1|1|5|6)\$/.test(stored)) return undefined; // MD5/SHA-crypt: not supported
  const want = sha256(stored);
  return (p) => Promise.resolve(equal(sha256(p), want));
}

function users(o: Options, ctx: BuildContext): { table: Map<string, Check>; problems: OptionProblem[] } {
  const table = new Map<string, Check>();
  const problems: OptionProblem[] = [];
  const raw = o as unknown as Record<string, unknown>;
  const u = readSecret(raw, "username", ctx);
  const p = readSecret(raw, "password", ctx);
  problems.push(...u.problems, ...p.problems);
  if ((u.value === undefined) !== (p.value === undefined) && !problems.length)
    problems.push({
      path: [u.value === undefined ? "username" : "password"],
      message: "username and password go together",
    });
  const add = (name: string, stored: string, path: (string | number)[]) => {
    const c = checker(stored);
    if (!c) problems.push({ path, message: `user "${name}": only bcrypt, {SHA} or plain passwords are supported` });
    else table.set(name, c);
  };
  if (u.value !== undefined && p.value !== undefined) add(u.value, p.value, ["password"]);
  for (const [name, stored] of Object.entries(o.users ?? {})) add(name, stored, ["users", name]);
  if (o.htpasswd_path) {
    try {
      const lines = ctx.readFile(o.htpasswd_path).toString("utf8").split(/\r?\n/);
      lines.forEach((line, i) => {
        if (!line.trim() || line.startsWith("#")) return;
        const c = line.indexOf(":");
        if (c <= 0) problems.push({ path: ["htpasswd_path"], message: `line ${i + 1} is not user:hash` });
        else add(line.slice(0, c), line.slice(c + 1).trim(), ["htpasswd_path"]);
      });
    } catch (e) {
      problems.push({
        path: ["htpasswd_path"],
        message: `cannot read ${o.htpasswd_path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      });
    }
  }
  const { bad } = cidrList(o.trusted_proxies);
  if (bad.length) problems.push({ path: ["trusted_proxies"], message: `not addresses or CIDRs: ${bad.join(", ")}` });
  if (table.size === 0 && problems.length === 0)
    problems.push({ path: [], message: "no users: give username/password, users or htpasswd_path" });
  return { table, problems };
}

export const basicAuth: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "basic_auth",
  options: Options,
  check: (o, ctx) => users(o, ctx).problems,
  create: (o, ctx) => {
    const { table } = users(o, ctx);
    const challenge = { "www-authenticate": `Basic realm="${o.realm}", charset="UTF-8"` };
    const deny = (detail: string) =>
      new HttpError(401, detail, { type: problemType("unauthorized"), headers: challenge });
    const cache = new CredentialCache(o.cache_ttl_ms);
    const backoff = new FailureBackoff(o.failure_limit, o.max_backoff_ms);
    const trusted = o.trusted_proxies.length ? cidrList(o.trusted_proxies).list : undefined;
    let pending = 0;
    /** Runs a verification unless max_pending are already under way (then 503: memory and latency stay bounded). */
    const verify = async (run: () => Promise<boolean>): Promise<boolean> => {
      if (pending >= o.max_pending)
        throw new HttpError(503, "too many credential checks are waiting; retry shortly", {
          type: problemType("auth-busy"),
          headers: { "retry-after": "1" },
        });
      pending++;
      try {
        return await run();
      } finally {
        pending--;
      }
    };
    return {
      async onRequest(rctx) {
        const client = clientIp(rctx.clientAddress, rctx.req.headers["x-forwarded-for"], trusted);
        const wait = backoff.blockedFor(client);
        if (wait > 0)
          throw new HttpError(429, "too many failed logins from this client; wait before trying again", {
            type: problemType("login-backoff"),
            headers: { "retry-after": String(Math.ceil(wait / 1000)) },
          });
        const h = rctx.req.headers.authorization;
        if (!h) throw deny("credentials are required");
        const m = /^Basic[ ]+([A-Za-z0-9+/]+=*)$/i.exec(h);
        if (!m) throw deny("the Authorization header is not Basic credentials");
        const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
        const c = decoded.indexOf(":");
        if (c < 0) throw deny("malformed Basic credentials");
        const user = decoded.slice(0, c);
        const password = decoded.slice(c + 1);
        const check = table.get(user);
        if (check && cache.has(user, password)) {
          ctx.logger.debug("basic_auth credentials accepted", { request_id: rctx.id, user, cached: true });
          rctx.locals.user = user;
          return;
        }
        const ok = await verify(() => (check ? check(password) : bcryptVerify(decoded, DUMMY).then(() => false)));
        if (!ok) {
          backoff.failed(client);
          throw deny("wrong user name or password");
        }
        backoff.succeeded(client);
        cache.add(user, password);
        ctx.logger.debug("basic_auth credentials accepted", { request_id: rctx.id, user, cached: false });
        rctx.locals.user = user;
      },
    };
  },
};
