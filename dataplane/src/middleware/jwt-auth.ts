/**
 * `jwt_auth` (alias `jwtauth`): verifies a bearer JWT with jose. Keys come from an HMAC secret
 * (inline, file or env), a PEM public key or certificate, an inline JWK/JWKS, or a JWKS URL
 * (cached; an unknown `kid` refreshes it, at most once per cooldown). The accepted algorithms
 * are always tied to the key's type, so an HS256 token "signed" with an RSA public key (the
 * algorithm-confusion attack) and `alg: none` never verify. Claims go to `ctx.locals.jwt` and,
 * if asked, into upstream request headers.
 */
import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWK,
  type JWTVerifyGetKey,
  type JWTPayload,
} from "jose";
import type { BuildContext, MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { headerValue } from "../backends/http-headers.js";
import { readSecret, secretProps } from "../plugins/secret.js";

const HS = ["HS256", "HS384", "HS512"];
const RSA = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const ALL_ASYMMETRIC = [...RSA, "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

const Options = Type.Object(
  {
    ...secretProps("secret", "HMAC secret for HS256/384/512"),
    ...secretProps("hs256_secret", "HMAC secret (original Harmony's name)"),
    use_hs256: Type.Optional(Type.Boolean({ description: "Original Harmony: verify HS256 with hs256_secret." })),
    public_key_path: Type.Optional(Type.String({ description: "PEM public key or certificate (RSA, EC, Ed25519)." })),
    jwk: Type.Optional(Type.Unknown({ description: "Inline JWK, or a JWKS ({ keys = [...] })." })),
    jwks_url: Type.Optional(Type.String({ description: "JWKS URL (https, or http on loopback)." })),
    jwks_cache_secs: Type.Integer({ minimum: 1, default: 600, description: "How long a fetched JWKS is used." }),
    jwks_cooldown_secs: Type.Integer({
      minimum: 0,
      default: 30,
      description: "Least time between two fetches (an unknown kid refreshes at most this often).",
    }),
    jwks_timeout_ms: Type.Integer({ minimum: 1, default: 5000 }),
    algorithms: Type.Optional(
      Type.Array(Type.String(), { minItems: 1, description: "Accepted algorithms (default: the key type's)." }),
    ),
    issuer: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
    audience: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
    leeway_secs: Type.Integer({ minimum: 0, default: 60, description: "Clock skew allowed on exp/nbf/iat." }),
    required_claims: Type.Array(Type.String(), { default: [], description: "Claims that must be present." }),
    claims_to_headers: Type.Record(Type.String(), Type.String(), {
      default: {},
      description: 'Claim → upstream request header, e.g. { sub = "x-user" }.',
    }),
    header: Type.String({ default: "authorization", description: "Header carrying `Bearer <token>`." }),
    realm: Type.String({ default: "harmony" }),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

type KeySource =
  { kind: "secret"; key: KeyObject } | { kind: "public"; key: KeyObject } | { kind: "jwks"; get: JWTVerifyGetKey };

/** Algorithms a key of this type can verify; anything else is confusion. */
function familyOf(source: KeySource): string[] {
  if (source.kind === "secret") return HS;
  if (source.kind === "jwks") return ALL_ASYMMETRIC;
  switch (source.key.asymmetricKeyType) {
    case "rsa":
      return RSA;
    case "rsa-pss":
      return ["PS256", "PS384", "PS512"];
    case "ec": {
      const curve = source.key.asymmetricKeyDetails?.namedCurve;
      return curve === "prime256v1"
        ? ["ES256"]
        : curve === "secp384r1"
          ? ["ES384"]
          : curve === "secp521r1"
            ? ["ES512"]
            : [];
    }
    case "ed25519":
      return ["EdDSA", "Ed25519"];
    default:
      return [];
  }
}

function keySource(o: Options, ctx: BuildContext): { source?: KeySource; problems: OptionProblem[] } {
  const problems: OptionProblem[] = [];
  const raw = o as unknown as Record<string, unknown>;
  const secret = readSecret(raw, "secret", ctx);
  const legacy = readSecret(raw, "hs256_secret", ctx);
  problems.push(...secret.problems, ...legacy.problems);
  const sources: KeySource[] = [];
  const hmac = secret.value ?? (o.use_hs256 || !o.public_key_path ? legacy.value : undefined);
  if (hmac !== undefined) {
    if (Buffer.byteLength(hmac) < 32)
      problems.push({ path: ["secret"], message: "an HMAC secret must be at least 32 bytes (RFC 7518 3.2)" });
    sources.push({ kind: "secret", key: createSecretKey(Buffer.from(hmac)) });
  }
  if (o.public_key_path) {
    try {
      sources.push({ kind: "public", key: createPublicKey(ctx.readFile(o.public_key_path)) });
    } catch (e) {
      problems.push({ path: ["public_key_path"], message: `cannot use ${o.public_key_path}: ${(e as Error).message}` });
    }
  }
  if (o.jwk !== undefined) {
    try {
      const jwks = (o.jwk as { keys?: JWK[] }).keys ? (o.jwk as { keys: JWK[] }) : { keys: [o.jwk as JWK] };
      if (jwks.keys.some((k) => k.kty === "oct")) throw new Error("symmetric (oct) keys go in `secret`, not `jwk`");
      sources.push({ kind: "jwks", get: createLocalJWKSet(jwks) });
    } catch (e) {
      problems.push({ path: ["jwk"], message: (e as Error).message });
    }
  }
  if (o.jwks_url) {
    try {
      const url = new URL(o.jwks_url);
      const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
      if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback))
        throw new Error("must be https (http only on loopback)");
      sources.push({
        kind: "jwks",
        get: createRemoteJWKSet(url, {
          cacheMaxAge: o.jwks_cache_secs * 1000,
          cooldownDuration: o.jwks_cooldown_secs * 1000,
          timeoutDuration: o.jwks_timeout_ms,
        }),
      });
    } catch (e) {
      problems.push({ path: ["jwks_url"], message: (e as Error).message });
    }
  }
  if (sources.length === 0 && problems.length === 0)
    problems.push({ path: [], message: "needs a key: secret (or _file/_env), public_key_path, jwk or jwks_url" });
  if (sources.length > 1) problems.push({ path: [], message: "give exactly one key source" });
  if (sources.length === 1 && o.algorithms) {
    const family = familyOf(sources[0]!);
    const wrong = o.algorithms.filter((a) => !family.includes(a));
    if (wrong.length)
      problems.push({
        path: ["algorithms"],
        message: `${wrong.join(", ")} cannot be verified with this key (it takes ${family.join(", ") || "none"})`,
      });
  }
  return { source: problems.length ? undefined : sources[0], problems };
}

function unauthorized(o: Options, detail: string, error?: "invalid_token" | "invalid_request"): HttpError {
  const challenge = `Bearer realm="${o.realm}"${error ? `, error="${error}", error_description="${detail}"` : ""}`;
  return new HttpError(401, detail, { type: problemType("unauthorized"), headers: { "www-authenticate": challenge } });
}

/** What went wrong, in words safe to send back (never the token, never key material). */
function reason(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) return "the token has expired";
  if (e instanceof joseErrors.JWTClaimValidationFailed) return `claim "${e.claim}" is not acceptable (${e.reason})`;
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return "the signature does not verify";
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return "the token's algorithm is not accepted";
  if (e instanceof joseErrors.JWKSNoMatchingKey) return "no key matches the token's kid";
  if (e instanceof joseErrors.JWSInvalid || e instanceof joseErrors.JWTInvalid) return "the token is malformed";
  if (e instanceof joseErrors.JWKSTimeout || e instanceof joseErrors.JWKSInvalid)
    return "the signing keys are unavailable";
  return "the token could not be verified";
}

export const jwtAuth: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "jwt_auth",
  aliases: ["jwtauth"],
  options: Options,
  check: (o, ctx) => keySource(o, ctx).problems,
  create: (o, ctx) => {
    const { source } = keySource(o, ctx);
    if (!source) throw new Error("no usable key"); // check() already reported why
    const algorithms = o.algorithms ?? familyOf(source);
    const key = source.kind === "jwks" ? source.get : source.key;
    return {
      async onRequest(rctx: RequestContext) {
        const h = rctx.req.headers[o.header.toLowerCase()];
        const value = Array.isArray(h) ? h[0] : h;
        if (!value) throw unauthorized(o, "a bearer token is required");
        const m = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)$/i.exec(value);
        if (!m) throw unauthorized(o, "the Authorization header is not a bearer token", "invalid_request");
        let payload: JWTPayload;
        try {
          ({ payload } = await jwtVerify(m[1]!, key as never, {
            algorithms,
            issuer: o.issuer,
            audience: o.audience,
            clockTolerance: o.leeway_secs,
            requiredClaims: o.required_claims,
          }));
        } catch (e) {
          const why = reason(e);
          if (e instanceof joseErrors.JWKSTimeout || e instanceof joseErrors.JWKSInvalid) {
            ctx.logger.warn("JWKS unavailable", { request_id: rctx.id, error: String(e) });
            throw new HttpError(503, why, { type: problemType("jwks-unavailable"), headers: { "retry-after": "5" } });
          }
          throw unauthorized(o, why, "invalid_token");
        }
        rctx.locals.jwt = payload;
        for (const [claim, header] of Object.entries(o.claims_to_headers)) {
          const v = payload[claim];
          if (v === undefined) delete rctx.req.headers[header.toLowerCase()];
          else rctx.req.headers[header.toLowerCase()] = headerValue(typeof v === "string" ? v : JSON.stringify(v));
        }
      },
    };
  },
};
