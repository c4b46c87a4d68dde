/**
 * Watches exactly one ConfigMap (and reads one Secret) through the Kubernetes API, so a config
 * change reaches the data plane in well under a second instead of the kubelet's sync period
 * (48–78 s by default). Needs only `get` + `watch` on that ConfigMap and `get` on that Secret
 * (a Role with resourceNames): the Secret is read again on every ConfigMap change, because the
 * operator writes the Secret first and every Secret change it makes also changes config.toml.
 *
 * It never gives up: a failed GET or a broken watch is retried with exponential backoff (250 ms
 * to 10 s, jittered), the watch resumes from the last resourceVersion, and a 410 Gone starts over
 * from a fresh GET. While it is not connected the gateway keeps serving, and takes file changes.
 */
import type { Logger } from "winston";
import { KubeApiError, getObject, watchObjects, type KubeConnection } from "./api.js";
import type { KubeSourceSpec } from "./uri.js";

export type { KubeSourceSpec };

interface ObjectMeta {
  metadata?: { resourceVersion?: string };
}
interface ConfigMapObject extends ObjectMeta {
  data?: Record<string, string>;
}
interface SecretObject extends ObjectMeta {
  data?: Record<string, string>;
}

export interface ApiRevision {
  files: Record<string, string>;
  secrets: Record<string, Buffer>;
  /** `<configmap rv>/<secret rv>`: for /admin/info and logs. */
  version: string;
}

export interface SourceStatus {
  uri: string;
  connected: boolean;
  version?: string;
  last_error?: string;
  since: string;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 10_000;
/** Server-side end of each watch: a fresh one resumes from the last resourceVersion. */
const WATCH_SECONDS = 300;

export class KubeConfigSource {
  private readonly abort = new AbortController();
  private connected = false;
  private since = new Date();
  private lastError: string | undefined;
  private version: string | undefined;
  private pending: ConfigMapObject | undefined;
  private draining = false;
  private closed = false;

  constructor(
    private readonly spec: KubeSourceSpec,
    private readonly conn: KubeConnection,
    private readonly onRevision: (rev: ApiRevision) => void,
    private readonly logger: Logger,
  ) {}

  start(): void {
    void this.run();
  }

  close(): void {
    this.closed = true;
    this.abort.abort();
  }

  /** Connected: the last GET and the watch since then have worked, so the API is the newest source. */
  healthy(): boolean {
    return this.connected;
  }

  status(): SourceStatus {
    const { namespace, configMap, secret } = this.spec;
    return {
      uri: `kubernetes://${namespace}/${configMap}${secret ? `?secret=${secret}` : ""}`,
      connected: this.connected,
      ...(this.version ? { version: this.version } : {}),
      ...(this.lastError ? { last_error: this.lastError } : {}),
      since: this.since.toISOString(),
    };
  }

  private get cmPath(): string {
    return `/api/v1/namespaces/${this.spec.namespace}/configmaps`;
  }

  private async run(): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    while (!this.closed) {
      try {
        const cm = await getObject<ConfigMapObject>(
          this.conn,
          `${this.cmPath}/${this.spec.configMap}`,
          this.abort.signal,
        );
        if (!cm) throw new KubeApiError(404, "NotFound");
        let rv = cm.metadata?.resourceVersion ?? "";
        this.offer(cm);
        this.setConnected(true);
        backoff = MIN_BACKOFF_MS;
        while (!this.closed) {
          const q = new URLSearchParams({
            fieldSelector: `metadata.name=${this.spec.configMap}`,
            watch: "true",
            resourceVersion: rv,
            allowWatchBookmarks: "true",
            timeoutSeconds: String(WATCH_SECONDS),
          });
          await watchObjects<ConfigMapObject>(
            this.conn,
            `${this.cmPath}?${q.toString()}`,
            (ev) => {
              rv = ev.object.metadata?.resourceVersion ?? rv;
              if (ev.type === "ADDED" || ev.type === "MODIFIED") this.offer(ev.object);
              // DELETED: the gateway is going away; the pods keep the config they have.
            },
            this.abort.signal,
            (WATCH_SECONDS + 30) * 1000,
          );
        }
      } catch (e) {
        if (this.closed) return;
        this.setConnected(false, describe(e));
        const wait = backoff / 2 + Math.random() * (backoff / 2);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        await new Promise((r) => setTimeout(r, wait).unref());
      }
    }
  }

  private setConnected(on: boolean, error?: string): void {
    if (error) this.lastError = error;
    if (on === this.connected) return;
    this.connected = on;
    this.since = new Date();
    if (on) this.logger.info("config source connected", { source: this.status().uri });
    else this.logger.warn("config source unreachable; serving the current config, retrying", { error });
  }

  /** Newest ConfigMap wins: a revision still reading its Secret is superseded, not queued. */
  private offer(cm: ConfigMapObject): void {
    this.pending = cm;
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    let backoff = MIN_BACKOFF_MS;
    try {
      while (this.pending && !this.closed) {
        const cm = this.pending;
        this.pending = undefined;
        let secret: SecretObject | undefined;
        if (this.spec.secret) {
          try {
            const path = `/api/v1/namespaces/${this.spec.namespace}/secrets/${this.spec.secret}`;
            secret = await getObject<SecretObject>(this.conn, path, this.abort.signal);
          } catch (e) {
            if (this.closed) return;
            this.logger.warn("config source: cannot read the Secret; retrying", { error: describe(e) });
            this.pending ??= cm;
            await new Promise((r) => setTimeout(r, backoff).unref());
            backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
            continue;
          }
        }
        const secrets: Record<string, Buffer> = {};
        for (const [k, v] of Object.entries(secret?.data ?? {})) secrets[k] = Buffer.from(v, "base64");
        this.version = `${cm.metadata?.resourceVersion ?? ""}/${secret?.metadata?.resourceVersion ?? "-"}`;
        this.onRevision({ files: { ...(cm.data ?? {}) }, secrets, version: this.version });
      }
    } finally {
      this.draining = false;
    }
  }
}

/** An error as one line with no body, headers or token in it. */
function describe(e: unknown): string {
  if (e instanceof KubeApiError) return e.message;
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}${err.message ? `: ${err.message.split("\n")[0]}` : ""}` : String(err.message ?? e);
}
