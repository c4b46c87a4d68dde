/**
 * `fhir` endpoint: a FHIR R4 REST base under `path_prefix`. Errors the gateway raises (auth,
 * limits, an unreachable server) reach the client as OperationOutcome; a request body that is not
 * a FHIR format is refused with 415 before it goes anywhere.
 */
import { Type } from "@sinclair/typebox";
import type { EndpointPlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError } from "../pipeline/errors.js";
import { writeOperationOutcome } from "../protocols/fhir-outcome.js";

const Options = Type.Object(
  {
    path_prefix: Type.String({ minLength: 1, description: "The FHIR base path clients use, e.g. /fhir." }),
    methods: Type.Optional(Type.Array(Type.String({ pattern: "^[A-Za-z]+$" }), { minItems: 1 })),
  },
  { additionalProperties: false },
);

/** FHIR JSON and XML, JSON/FHIRPath patch, and form posts for `_search`. */
const BODY_TYPES =
  /^(application\/(fhir\+json|json|fhir\+xml|xml|json-patch\+json|fhir\+json-patch|x-www-form-urlencoded)|text\/xml)\b/i;

function onRequest(ctx: RequestContext): void {
  if (!["POST", "PUT", "PATCH"].includes(ctx.method) || !ctx.body.present) return;
  const ct = ctx.req.headers["content-type"];
  if (!ct || !BODY_TYPES.test(ct)) {
    throw new HttpError(
      415,
      `Content-Type ${ct ? `"${ct}"` : "(none)"} is not a FHIR format; send application/fhir+json`,
    );
  }
}

export const fhirEndpoint: EndpointPlugin<typeof Options> = {
  kind: "endpoint",
  type: "fhir",
  options: Options,
  create: (o) => ({
    routes: [{ prefix: o.path_prefix, methods: o.methods ?? "*" }],
    onRequest,
    renderError: (problem, ctx, res) => writeOperationOutcome(res, problem, ctx.id),
  }),
};
