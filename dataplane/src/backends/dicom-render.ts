/**
 * WADO-RS frames and rendered images through a `dicom` backend: the instance is retrieved
 * (C-GET, or C-MOVE to the gateway) in an uncompressed syntax, so that a peer able to decompress
 * does it, and its pixel data rendered here (protocols/pixel-render.ts):
 *
 * - `…/instances/{i}/rendered` (and `thumbnail`): the first frame, JPEG or PNG by `Accept`;
 * - `…/frames/{list}/rendered`: those frames as images (one: the image; several: multipart/related);
 * - `…/frames/{list}`: `Accept: multipart/related; type="application/octet-stream"` gets the raw
 *   frames (PS3.18 §8.7.3.3); an image type, `*` or no Accept gets images, as Harmony answered.
 *
 * An instance that still arrives compressed, or in a photometric this build cannot render, is a
 * 406 naming why; a frame number past the instance's frames is 404.
 */
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import type { Received } from "../protocols/dimse-client.js";
import type { Level } from "../protocols/dicomweb-request.js";
import { MultipartWriter } from "../protocols/multipart.js";
import { RenderError, frameBytesOf, readImage, type Image, type ImageType } from "../protocols/pixel-render.js";
import { renderFrame } from "../protocols/render-pool.js";

type Fetch = (
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  onInstance: (r: Received) => Promise<void>,
) => Promise<{ status: number; completed: number; failed: number; warnings: number }>;

export interface RenderOp {
  study: string;
  series: string;
  sop: string;
  /** 1-based frame numbers; undefined for the instance's rendered resource (its first frame). */
  frames?: number[];
  rendered: boolean;
}

const PATH =
  /^\/studies\/([0-9.]+)\/series\/([0-9.]+)\/instances\/([0-9.]+)\/(?:(rendered|thumbnail)|frames\/([0-9]+(?:,[0-9]+)*)(\/(?:rendered|thumbnail))?)\/?$/;
const MAX_FRAMES = 1000;

/** The frames or rendered resource a path names, if it is one at instance level. */
export function renderOp(path: string): RenderOp | undefined {
  const m = PATH.exec(path);
  if (!m) return undefined;
  const [, study, series, sop, instanceRendered, list, framesRendered] = m;
  if (instanceRendered) return { study: study!, series: series!, sop: sop!, rendered: true };
  const frames = list!.split(",").map(Number);
  if (frames.length > MAX_FRAMES) throw new HttpError(400, `at most ${MAX_FRAMES} frames in one request`);
  if (frames.some((n) => n < 1)) throw new HttpError(400, "frame numbers start at 1");
  return { study: study!, series: series!, sop: sop!, frames, rendered: framesRendered !== undefined };
}

type Output = { kind: "image"; type: ImageType } | { kind: "raw" };

/** What the client takes, in its order of preference; undefined when nothing here fits. */
function negotiate(accept: string | undefined, rendered: boolean): Output | undefined {
  if (!accept?.trim()) return { kind: "image", type: "image/jpeg" };
  for (const range of accept.split(",")) {
    const [media = "", ...params] = range.split(";").map((x) => x.trim().toLowerCase());
    const p: Record<string, string> = {};
    for (const x of params) {
      const [k = "", v = ""] = x.split("=").map((y) => y.trim().replace(/^"|"$/g, ""));
      p[k] = v;
    }
    if (p.q === "0") continue;
    if (media === "image/png" || media === "image/jpeg") return { kind: "image", type: media };
    if (media === "*/*" || media === "image/*") return { kind: "image", type: "image/jpeg" };
    if (media === "multipart/related") {
      const type = p.type ?? "application/octet-stream";
      if (type === "image/png" || type === "image/jpeg") return { kind: "image", type };
      if (type === "application/octet-stream" && !rendered) {
        // Only uncompressed frames are served: a client must take Explicit VR LE (or any, `*`).
        const ts = p["transfer-syntax"];
        if (ts === undefined || ts === "*" || ts === "1.2.840.10008.1.2.1") return { kind: "raw" };
      }
    }
  }
  return undefined;
}

export async function render(rctx: RequestContext, fetch: Fetch, op: RenderOp): Promise<void> {
  const accept = rctx.header("accept");
  const out = negotiate(accept, op.rendered);
  if (!out)
    throw new HttpError(
      406,
      `frames and rendered images from a DIMSE origin are image/jpeg, image/png or (frames) multipart/related; type="application/octet-stream" uncompressed, not ${accept}`,
      { title: "Not Acceptable" },
    );
  let received: Received | undefined;
  const r = await fetch("IMAGE", op, (inst) => {
    received ??= inst;
    return Promise.resolve();
  });
  if (!received) {
    if (r.completed === 0 && r.failed === 0 && r.warnings === 0) throw new HttpError(404, "no instance matches");
    throw new HttpError(
      406,
      "the DICOM peer did not send the instance in an uncompressed transfer syntax (it is likely stored compressed and the peer does not decompress); this build has no codec to decode compressed pixel data",
      { title: "Not Acceptable", type: problemType("compressed-pixel-data") },
    );
  }
  let img: Image;
  try {
    img = readImage(received.dataset.bytes ?? received.dataset.getDenaturalizedDataset(), received.transferSyntax);
  } catch (e) {
    if (e instanceof RenderError)
      throw new HttpError(406, e.message, { title: "Not Acceptable", type: problemType("cannot-render") });
    throw e;
  }
  const frames = op.frames ?? [1];
  const missing = frames.find((n) => n > img.frames);
  if (missing !== undefined)
    throw new HttpError(404, `frame ${missing} does not exist; the instance has ${img.frames}`);

  const headers = { "x-request-id": rctx.id };
  if (out.kind === "raw") {
    const writer = new MultipartWriter("application/octet-stream");
    const partType = "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1";
    const parts = frames.flatMap((n) => writer.part(frameBytesOf(img, n), partType));
    rctx.response = {
      status: 200,
      headers: { ...headers, "content-type": writer.contentType },
      body: Buffer.concat([...parts, writer.end()]),
    };
    return;
  }
  if (frames.length === 1) {
    rctx.response = {
      status: 200,
      headers: { ...headers, "content-type": out.type },
      body: await renderFrame(img, frames[0]!, out.type),
    };
    return;
  }
  const writer = new MultipartWriter(out.type);
  const parts: Buffer[] = [];
  // One frame at a time: the pool's queue stays short however many frames one request names.
  for (const n of frames) parts.push(...writer.part(await renderFrame(img, n, out.type)));
  rctx.response = {
    status: 200,
    headers: { ...headers, "content-type": writer.contentType },
    body: Buffer.concat([...parts, writer.end()]),
  };
}
