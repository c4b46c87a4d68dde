/** `echo` endpoint: an http endpoint by another name, kept for configs written for the original. */
import type { EndpointPlugin } from "../plugins/types.js";
import { HttpEndpointOptions } from "./http.js";

export const echoEndpoint: EndpointPlugin<typeof HttpEndpointOptions> = {
  kind: "endpoint",
  type: "echo",
  options: HttpEndpointOptions,
  create: (o) => ({ routes: [{ prefix: o.path_prefix, methods: o.methods ?? "*" }] }),
};
