/**
 * `dicomweb_bridge` (alias `dicomweb`) and `dicom_to_dicomweb`: in the original Harmony these
 * middleware translated between DICOMweb and DIMSE. Here the translation is the endpoint and
 * backend pair itself (a `dicomweb` endpoint with a `dicom` backend; a `dicom` endpoint with a
 * `dicomweb` backend), so these names are accepted, do nothing, and keep old configs loading.
 */
import { Type } from "@sinclair/typebox";
import type { MiddlewarePlugin } from "../plugins/types.js";

const Options = Type.Object({}, { additionalProperties: true });

const noOp = (type: string, aliases: string[] = []): MiddlewarePlugin<typeof Options> => ({
  kind: "middleware",
  type,
  aliases,
  options: Options,
  create: () => ({}),
});

export const dicomwebBridge = noOp("dicomweb_bridge", ["dicomweb"]);
export const dicomToDicomweb = noOp("dicom_to_dicomweb");
