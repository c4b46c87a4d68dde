/**
 * `http` endpoint: claims a path (prefix or exact) and optionally methods, hostnames, header and
 * query matches on its networks: everything a Gateway API HTTPRoute match says.
 */
import { Type, type Static } from "@sinclair/typebox";
import type { EndpointPlugin, OptionProblem } from "../plugins/types.js";
import { compileLinearRegex } from "../pipeline/route-match.js";

// Gateway API's hostname grammar (a leading "*." for a wildcard), any case, or a bracketed IPv6 literal.
const HOSTNAME =
  "^(\\*\\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$|^\\[[0-9A-Fa-f:.]+\\]$";

const ValueMatch = (what: string) =>
  Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 256, description: `${what} name.` }),
      value: Type.String({ maxLength: 4096, description: "Value to match (exact) or pattern (regex)." }),
      type: Type.Optional(
        Type.Union([Type.Literal("exact"), Type.Literal("regex")], {
          default: "exact",
          description:
            "exact: the whole value, case-sensitive. regex: a JavaScript pattern searched in the value (anchor it with ^ $), compiled for linear-time matching: backreferences and lookaround are refused at load.",
        }),
      ),
    },
    { additionalProperties: false },
  );

export const HttpEndpointOptions = Type.Object(
  {
    path_prefix: Type.String({
      minLength: 1,
      description: 'Path prefix this endpoint serves (`/` for everything); with path_match = "exact", the exact path.',
    }),
    path_match: Type.Optional(
      Type.Union([Type.Literal("prefix"), Type.Literal("exact")], {
        default: "prefix",
        description:
          "prefix: the path and anything below it, segment-wise (Gateway API PathPrefix). exact: only this path (Gateway API Exact).",
      }),
    ),
    methods: Type.Optional(
      Type.Array(Type.String({ pattern: "^[A-Za-z]+$" }), {
        minItems: 1,
        description: "Methods accepted; any method when absent.",
      }),
    ),
    hostnames: Type.Optional(
      Type.Array(Type.String({ pattern: HOSTNAME, maxLength: 253 }), {
        description:
          'Hosts served, compared with the request\'s Host without its port, in any case: exact ("a.example.com") or wildcard ("*.example.com": one or more labels before the suffix). Absent or empty: any Host. An exact hostname beats a wildcard, a longer wildcard a shorter one, any wildcard no hostname.',
      }),
    ),
    headers: Type.Optional(
      Type.Array(ValueMatch("Header (case-insensitive)"), {
        description:
          'Request headers that must all match (Gateway API HTTPHeaderMatch). A repeated request header is matched on its values joined by ", "; of entries naming the same header, the first counts.',
      }),
    ),
    query: Type.Optional(
      Type.Array(ValueMatch("Query parameter (case-sensitive)"), {
        description: "Query parameters that must all match (first value of a repeated parameter).",
      }),
    ),
    method_mismatch_status: Type.Optional(
      Type.Union([Type.Literal(405), Type.Literal(404)], {
        default: 405,
        description:
          "What a request gets that this endpoint would serve but for its method (and no other endpoint serves): 405 with Allow, or 404 as Gateway API expects of a method match that does not match.",
      }),
    ),
    precedence: Type.Optional(
      Type.Integer({
        minimum: 0,
        default: 0,
        description:
          "Tie-break between routes equally specific by the Gateway API order; lower wins, then config order.",
      }),
    ),
  },
  { additionalProperties: false },
);

type Options = Static<typeof HttpEndpointOptions>;

function check(o: Options): OptionProblem[] {
  const problems: OptionProblem[] = [];
  for (const list of ["headers", "query"] as const) {
    (o[list] ?? []).forEach((m, i) => {
      if (m.type !== "regex") return;
      const r = compileLinearRegex(m.value);
      if (typeof r === "string") problems.push({ path: [list, i, "value"], message: r });
    });
  }
  if (o.path_match === "exact" && !o.path_prefix.startsWith("/"))
    problems.push({ path: ["path_prefix"], message: 'an exact path starts with "/"' });
  return problems;
}

export const httpEndpoint: EndpointPlugin<typeof HttpEndpointOptions> = {
  kind: "endpoint",
  type: "http",
  options: HttpEndpointOptions,
  check,
  create: (o) => ({
    routes: [
      {
        prefix: o.path_prefix,
        methods: o.methods ?? "*",
        exact: o.path_match === "exact",
        hostnames: o.hostnames,
        headers: o.headers,
        query: o.query,
        precedence: o.precedence,
        methodMismatch404: o.method_mismatch_status === 404,
      },
    ],
  }),
};
