/** SOP classes the gateway's SCP serves (PS3.4), by service. */
export const VERIFICATION = "1.2.840.10008.1.1";
export const FIND = ["1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.2.1"]; // patient root, study root
export const WORKLIST = "1.2.840.10008.5.1.4.31";
export const MOVE = ["1.2.840.10008.5.1.4.1.2.1.2", "1.2.840.10008.5.1.4.1.2.2.2"];
export const GET = ["1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3"];
/** Every storage SOP class lives under this root (PS3.4 B.5). */
export const STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1.";
