/** Where the gateway's pods mount what the operator writes, and the management listener's network name. */
export const CONFIG_DIR = "/etc/harmony/config";
export const SECRET_DIR = "/etc/harmony/secrets";
export const MANAGEMENT_NETWORK = "management";
