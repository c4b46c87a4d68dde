/**
 * Runs in a worker thread (see render-pool.ts): one frame encoded per task. pngjs and jpeg-js are
 * pure JavaScript; a 2048×2048 frame takes a few hundred ms of CPU, here off the event loop.
 */
import { encodeFrame, type Image, type ImageType } from "./pixel-render.js";

export default function encode(task: { img: Image; type: ImageType }): Uint8Array {
  // Structured cloning delivers the pixels as a Uint8Array; the encoder reads them as a Buffer.
  const p = task.img.pixels as Uint8Array;
  const pixels = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  return encodeFrame({ ...task.img, pixels }, 1, task.type);
}
