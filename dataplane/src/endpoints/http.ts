/** `http` endpoint: claims a path prefix (and optionally a set of methods) on its networks. */
import { Type } from "@sinclair/typebox";
import type { EndpointPlugin } from "../plugins/types.js";

export const HttpEndpointOptions = Type.Object(
  {
    path_prefix: Type.String({ minLength: 1, description: "Path prefix this endpoint serves (`/` for everything)." }),
    methods: Type.Optional(
      Type.Array(Type.String({ pattern: "^[A-Za-z]+$" }), {
        minItems: 1,
        description: "Methods accepted; any method when absent.",
      }),
    ),
  },
  { additionalProperties: false },
);

export const httpEndpoint: EndpointPlugin<typeof HttpEndpointOptions> = {
  kind: "endpoint",
  type: "http",
  options: HttpEndpointOptions,
  create: (o) => ({ routes: [{ prefix: o.path_prefix, methods: o.methods ?? "*" }] }),
};
