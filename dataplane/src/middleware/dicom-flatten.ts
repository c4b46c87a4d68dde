/**
 * `dicom_flatten` and `dicom_unflatten`: DICOM JSON bodies (one data set or a list, as QIDO-RS
 * returns) to flat maps and back (protocols/dicom-flatten.ts). `apply` picks the side: the
 * request body, the response body, or both. Bodies that are not JSON pass untouched.
 */
import { Type, type Static } from "@sinclair/typebox";
import type { MiddlewarePlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError } from "../pipeline/errors.js";
import { readResponseJson, replaceResponseJson } from "../pipeline/response-body.js";
import { flatten, unflatten } from "../protocols/dicom-flatten.js";
import type { DicomJsonDataset } from "../protocols/dicom-json.js";

const Options = Type.Object(
  {
    apply: Type.Union([Type.Literal("left"), Type.Literal("right"), Type.Literal("both")], {
      default: "both",
      description: "left: the request body; right: the response body.",
    }),
    keys: Type.Union([Type.Literal("tag"), Type.Literal("keyword")], {
      default: "tag",
      description: 'Flat keys as tags ("00100020") or keywords ("PatientID").',
    }),
    max_bytes: Type.Integer({ minimum: 1, default: 16 * 1024 * 1024, description: "Largest body transformed." }),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

type Each = (v: unknown) => unknown;
const each = (v: unknown, f: Each) => (Array.isArray(v) ? v.map(f) : f(v));
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function plugin(type: string, direction: "flatten" | "unflatten"): MiddlewarePlugin<typeof Options> {
  return {
    kind: "middleware",
    type,
    options: Options,
    create: (o: Options) => {
      const convert: Each = (v) => {
        if (!isObject(v)) return v;
        if (direction === "flatten") return flatten(v as DicomJsonDataset, o.keys);
        const { ds, unknown } = unflatten(v);
        if (unknown.length)
          throw new HttpError(400, `not DICOM attributes: ${unknown.slice(0, 10).join(", ")}`, {
            type: "https://harmony.runbeam.io/problems/unknown-attribute",
          });
        return ds;
      };
      const left = async (ctx: RequestContext) => {
        const body = await ctx.body.json();
        if (body !== undefined) ctx.body.replaceJson(each(body, convert));
      };
      const right = async (ctx: RequestContext) => {
        const body = await readResponseJson(ctx, o.max_bytes);
        if (body !== undefined) replaceResponseJson(ctx, each(body, convert));
      };
      return {
        ...(o.apply !== "right" ? { onRequest: left } : {}),
        ...(o.apply !== "left" ? { onResponse: right } : {}),
      };
    },
  };
}

export const dicomFlatten = plugin("dicom_flatten", "flatten");
export const dicomUnflatten = plugin("dicom_unflatten", "unflatten");
