/**
 * The DIMSE client and the C-MOVE receiver, loaded with the first dicom backend built: dcmjs-dimse
 * is about 11 MiB of heap (bench/README.md, issue 18), not something every data plane should carry.
 */
import { lazyModule } from "../lazy-module.js";

export const scu = lazyModule<typeof import("../protocols/dimse-client.js")>(
  "../protocols/dimse-client.js",
  import.meta.url,
);
export const moveReceiver = lazyModule<typeof import("../protocols/move-receiver.js")>(
  "../protocols/move-receiver.js",
  import.meta.url,
);
