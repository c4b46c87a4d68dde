/**
 * Uncompressed DICOM pixel data made viewable: one frame to 8-bit RGBA, encoded as PNG (pngjs) or
 * JPEG (jpeg-js), for WADO-RS rendered resources and Harmony's image frames from a DIMSE origin.
 * Grayscale goes through the Modality LUT (Rescale Slope/Intercept) and the VOI LUT's linear window
 * (PS3.3 C.11.2.1.2.1) from the data set's first Window Center/Width, or, without one, the frame's
 * own range; MONOCHROME1 is inverted. RGB (8 bits, either planar configuration) is taken as it is.
 * Compressed pixel data is not decoded here (no codec in this build): the caller asks the peer for
 * an uncompressed syntax and refuses what it still cannot read.
 */
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { EXPLICIT_LE, isUncompressed, topLevelValue, transcode } from "./transfer-syntax.js";

export class RenderError extends Error {}

export interface Image {
  rows: number;
  columns: number;
  samples: number;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
  photometric: string;
  planar: number;
  frames: number;
  slope: number;
  intercept: number;
  window: { center: number; width: number } | undefined;
  pixels: Buffer;
}

/** Largest frame rendered, in pixels: bounds the RGBA buffer (4 bytes a pixel) an instance can make us allocate. */
const MAX_PIXELS = 64 * 1024 * 1024;

/** The image attributes and pixel data of a data set in an uncompressed transfer syntax. */
export function readImage(dataset: Buffer, ts: string): Image {
  if (!isUncompressed(ts))
    throw new RenderError(`pixel data in transfer syntax ${ts} is compressed; this build has no codec to decode it`);
  const ds = transcode(dataset, ts, EXPLICIT_LE);
  const raw = (g: number, e: number) => topLevelValue(ds, EXPLICIT_LE, g, e);
  const us = (e: number) => {
    const v = raw(0x0028, e);
    return v && v.length >= 2 ? v.readUInt16LE(0) : undefined;
  };
  const text = (g: number, e: number) =>
    raw(g, e)
      ?.toString("latin1")
      .replace(/[\0 ]+$/, "")
      .trim();
  const num = (g: number, e: number) => {
    const s = text(g, e)?.split("\\")[0]?.trim();
    const n = s ? Number(s) : NaN;
    return Number.isFinite(n) ? n : undefined;
  };
  const rows = us(0x0010);
  const columns = us(0x0011);
  const pixels = raw(0x7fe0, 0x0010);
  if (!rows || !columns || !pixels) throw new RenderError("the instance has no image (Rows, Columns, Pixel Data)");
  const bitsAllocated = us(0x0100) ?? 0;
  const center = num(0x0028, 0x1050);
  const width = num(0x0028, 0x1051);
  const img: Image = {
    rows,
    columns,
    samples: us(0x0002) ?? 1,
    bitsAllocated,
    bitsStored: us(0x0101) ?? bitsAllocated,
    signed: us(0x0103) === 1,
    photometric: text(0x0028, 0x0004) ?? "MONOCHROME2",
    planar: us(0x0006) ?? 0,
    frames: Math.max(1, Math.trunc(num(0x0028, 0x0008) ?? 1)),
    slope: num(0x0028, 0x1053) ?? 1,
    intercept: num(0x0028, 0x1052) ?? 0,
    window: center !== undefined && width !== undefined && width >= 1 ? { center, width } : undefined,
    pixels,
  };
  const gray = img.photometric === "MONOCHROME1" || img.photometric === "MONOCHROME2";
  if (!(gray && img.samples === 1 && [8, 16, 32].includes(bitsAllocated)) && !isRgb8(img))
    throw new RenderError(
      `cannot render ${img.photometric} with ${img.samples} samples of ${bitsAllocated} bits (grayscale 8/16/32 bits and 8-bit RGB are supported)`,
    );
  if (rows * columns > MAX_PIXELS)
    throw new RenderError(`a ${columns}×${rows} frame is larger than this gateway renders`);
  if (pixels.length < frameBytes(img) * img.frames)
    throw new RenderError("the pixel data is shorter than Rows × Columns × frames say");
  return img;
}

const isRgb8 = (img: Image) => img.photometric === "RGB" && img.samples === 3 && img.bitsAllocated === 8;
const frameBytes = (img: Image) => img.rows * img.columns * img.samples * (img.bitsAllocated / 8);

/** Frame `n` (1-based) as 8-bit RGBA. */
export function frameRgba(img: Image, n: number): Buffer {
  const size = frameBytes(img);
  const px = img.pixels.subarray((n - 1) * size, n * size);
  const count = img.rows * img.columns;
  const out = Buffer.alloc(count * 4, 255);
  if (isRgb8(img)) {
    for (let i = 0; i < count; i++)
      for (let s = 0; s < 3; s++) out[i * 4 + s] = img.planar === 1 ? px[s * count + i]! : px[i * 3 + s]!;
    return out;
  }
  const values = new Float64Array(count);
  const bytes = img.bitsAllocated / 8;
  const stored = 2 ** img.bitsStored;
  const signBit = 2 ** (img.bitsStored - 1);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < count; i++) {
    const at = i * bytes;
    let v = bytes === 1 ? px[at]! : bytes === 2 ? px.readUInt16LE(at) : px.readUInt32LE(at);
    if (img.bitsStored < img.bitsAllocated) v %= stored; // only the stored bits carry the value (High Bit = Bits Stored − 1)
    if (img.signed && v >= signBit) v -= 2 * signBit;
    const x = v * img.slope + img.intercept;
    values[i] = x;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const voi = img.window
    ? linearWindow(img.window.center, img.window.width)
    : (x: number) => (hi > lo ? ((x - lo) / (hi - lo)) * 255 : 0);
  const invert = img.photometric === "MONOCHROME1";
  for (let i = 0; i < count; i++) {
    let y = Math.round(voi(values[i]!));
    if (invert) y = 255 - y;
    out[i * 4] = out[i * 4 + 1] = out[i * 4 + 2] = y;
  }
  return out;
}

/** PS3.3 C.11.2.1.2.1, the LINEAR VOI LUT function, onto 0..255. */
function linearWindow(c: number, w: number): (x: number) => number {
  const below = c - 0.5 - (w - 1) / 2;
  const above = c - 0.5 + (w - 1) / 2;
  return (x) => (x <= below ? 0 : x > above ? 255 : ((x - (c - 0.5)) / (w - 1) + 0.5) * 255);
}

export type ImageType = "image/png" | "image/jpeg";

/** Frame `n` encoded as `type` (JPEG at quality 90, as Harmony did). */
export function encodeFrame(img: Image, n: number, type: ImageType): Buffer {
  if (n < 1 || n > img.frames) throw new RenderError(`frame ${n} does not exist; the instance has ${img.frames}`);
  const data = frameRgba(img, n);
  if (type === "image/jpeg") return jpeg.encode({ data, width: img.columns, height: img.rows }, 90).data;
  const png = new PNG({ width: img.columns, height: img.rows });
  data.copy(png.data);
  return PNG.sync.write(png);
}

/** Frame `n`'s stored bytes, as WADO-RS frames return them uncompressed (application/octet-stream). */
export function frameBytesOf(img: Image, n: number): Buffer {
  if (n < 1 || n > img.frames) throw new RenderError(`frame ${n} does not exist; the instance has ${img.frames}`);
  const size = frameBytes(img);
  return img.pixels.subarray((n - 1) * size, n * size);
}
