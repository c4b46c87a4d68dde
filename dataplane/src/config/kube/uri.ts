/** The `--config-source` URI: which ConfigMap (and Secret) the data plane watches through the API. */

export interface KubeSourceSpec {
  namespace: string;
  configMap: string;
  secret?: string;
  /** Where the Secret is mounted: `*_file` paths under it are served from the watched Secret. */
  secretDir?: string;
}

/** `kubernetes://<namespace>/<configmap>[?secret=<name>&secretDir=<dir>]` */
export function parseConfigSource(uri: string): KubeSourceSpec {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw new Error(`--config-source: not a URI: ${uri}`);
  }
  const name = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
  const cm = u.pathname.replace(/^\//, "");
  if (u.protocol !== "kubernetes:" || !name.test(u.hostname) || !name.test(cm)) {
    throw new Error(`--config-source: expected kubernetes://<namespace>/<configmap>[?secret=<name>], got ${uri}`);
  }
  const secret = u.searchParams.get("secret") ?? undefined;
  if (secret !== undefined && !name.test(secret)) throw new Error(`--config-source: bad Secret name "${secret}"`);
  const secretDir = u.searchParams.get("secretDir") ?? undefined;
  for (const k of u.searchParams.keys()) {
    if (k !== "secret" && k !== "secretDir") throw new Error(`--config-source: unknown parameter "${k}"`);
  }
  return { namespace: u.hostname, configMap: cm, ...(secret ? { secret } : {}), ...(secretDir ? { secretDir } : {}) };
}
