/**
 * `mesh_auth`: service-to-service identity between Harmony gateways of one mesh. The resolver
 * adds it to pipelines with `[pipelines.X.mesh.egress.<n>]` (role egress: sign) or
 * `[pipelines.X.mesh.ingress.<n>]` (role ingress: verify) when a `[mesh.<m>]` lists that name.
 *
 * Egress puts a short-lived JWT in `x-harmony-mesh` (iss = the mesh, sub = this gateway's id,
 * mesh_id, iat, exp = now + 5 min), signed with the mesh's HS256 secret or RS256 private key.
 * Ingress verifies it (issuer, algorithm, expiry); a forged or expired token is 401, and with
 * `mode = "mesh"` a request without one is 403. The verified source travels on as
 * `x-harmony-mesh-source`; the token itself does not.
 */
import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import { SignJWT, jwtVerify, errors as joseErrors } from "jose";
import type { BuildContext, MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { headerValue } from "../backends/http-headers.js";
import { readSecret } from "../plugins/secret.js";

export const MESH_HEADER = "x-harmony-mesh";
export const MESH_SOURCE_HEADER = "x-harmony-mesh-source";
const TOKEN_LIFETIME_S = 300;

const Options = Type.Object(
  {
    mesh: Type.String({ description: "Name of the [mesh.<name>] table." }),
    role: Type.Union([Type.Literal("ingress"), Type.Literal("egress")]),
    mode: Type.Union([Type.Literal("default"), Type.Literal("mesh")], {
      default: "default",
      description: "mesh: refuse requests without a mesh token (ingress).",
    }),
    source: Type.String({ default: "harmony", description: "This gateway's id (the token's sub)." }),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

interface Keys {
  alg: "HS256" | "RS256";
  sign?: KeyObject;
  verify?: KeyObject;
}

function meshKeys(o: Options, ctx: BuildContext): { keys?: Keys; problems: OptionProblem[] } {
  const m = ctx.table("mesh")[o.mesh] as Record<string, unknown> | undefined;
  if (!m || typeof m !== "object")
    return { problems: [{ path: ["mesh"], message: `mesh "${o.mesh}" is not defined` }] };
  const problems: OptionProblem[] = [];
  const secret = readSecret(m, "jwt_secret", ctx);
  problems.push(...secret.problems.map((p) => ({ ...p, message: `mesh "${o.mesh}": ${p.message}` })));
  if (secret.value !== undefined) {
    if (Buffer.byteLength(secret.value) < 32)
      problems.push({ path: ["mesh"], message: `mesh "${o.mesh}": jwt_secret must be at least 32 bytes` });
    const k = createSecretKey(Buffer.from(secret.value));
    return { keys: { alg: "HS256", sign: k, verify: k }, problems };
  }
  const load = (key: string, make: (b: Buffer) => KeyObject) => {
    const path = m[key];
    if (typeof path !== "string") return undefined;
    try {
      return make(ctx.readFile(path));
    } catch (e) {
      problems.push({ path: ["mesh"], message: `mesh "${o.mesh}": ${key} ${path}: ${(e as Error).message}` });
      return undefined;
    }
  };
  const sign = o.role === "egress" ? load("jwt_private_key_path", (b) => createPrivateKey(b)) : undefined;
  const verify = o.role === "ingress" ? load("jwt_public_key_path", (b) => createPublicKey(b)) : undefined;
  if ((o.role === "egress" && !sign) || (o.role === "ingress" && !verify)) {
    if (!problems.length)
      problems.push({
        path: ["mesh"],
        message: `mesh "${o.mesh}" needs jwt_secret (HS256) or jwt_${o.role === "egress" ? "private" : "public"}_key_path (RS256)`,
      });
    return { problems };
  }
  return { keys: { alg: "RS256", sign, verify }, problems };
}

export const meshAuth: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "mesh_auth",
  options: Options,
  check: (o, ctx) => meshKeys(o, ctx).problems,
  create: (o, ctx) => {
    const { keys } = meshKeys(o, ctx);
    if (!keys) throw new Error("mesh keys unavailable");
    if (o.role === "egress") {
      return {
        async onRequest(rctx) {
          rctx.req.headers[MESH_HEADER] = await new SignJWT({ mesh_id: o.mesh })
            .setProtectedHeader({ alg: keys.alg })
            .setIssuer(o.mesh)
            .setSubject(o.source)
            .setIssuedAt()
            .setExpirationTime(`${TOKEN_LIFETIME_S}s`)
            .sign(keys.sign!);
        },
      };
    }
    return {
      async onRequest(rctx) {
        const h = rctx.req.headers[MESH_HEADER];
        const token = Array.isArray(h) ? h[0] : h;
        delete rctx.req.headers[MESH_HEADER];
        delete rctx.req.headers[MESH_SOURCE_HEADER]; // only we say who the source is
        if (!token) {
          if (o.mode === "mesh")
            throw new HttpError(403, `only members of mesh "${o.mesh}" may call this pipeline`, {
              type: problemType("mesh-only"),
            });
          return;
        }
        try {
          const { payload } = await jwtVerify(token, keys.verify!, {
            algorithms: [keys.alg],
            issuer: o.mesh,
            clockTolerance: 30,
            requiredClaims: ["sub", "exp", "iat"],
          });
          rctx.req.headers[MESH_SOURCE_HEADER] = headerValue(String(payload.sub));
          rctx.locals.mesh = payload;
        } catch (e) {
          throw new HttpError(
            401,
            e instanceof joseErrors.JWTExpired ? "the mesh token has expired" : "the mesh token is not valid",
            {
              type: problemType("mesh-unauthorized"),
              headers: { "www-authenticate": `Bearer realm="mesh:${o.mesh}"` },
            },
          );
        }
      },
    };
  },
};
