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
 *
 * A large gateway's config is sharded (../shards.ts): the main ConfigMap's manifest names the
 * shard ConfigMaps, each watched the same way by name, and the tree is offered only once every
 * shard matches the manifest's digest.
 */
import type { Logger } from "winston";
import { KubeApiError, getObject, watchObjects, type KubeConnection } from "./api.js";
import type { KubeSourceSpec } from "./uri.js";
import { SHARD_MANIFEST, parseManifest, shardDigestKey, type ShardManifest } from "../shards.js";

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
  /** The main ConfigMap as last seen, and the shards its manifest names (README: config shards). */
  private main: ConfigMapObject | undefined;
  private readonly shards = new Map<
    string,
    { abort: AbortController; cm: ConfigMapObject | undefined; connected: boolean }
  >();
  /** resourceVersions of the set last offered: the same set is not offered twice. */
  private offered = "";
  private waitingFor = "";

  constructor(
    private readonly spec: KubeSourceSpec,
    private readonly conn: KubeConnection,
    private readonly onRevision: (rev: ApiRevision) => void,
    private readonly logger: Logger,
  ) {}

  start(): void {
    void this.follow(this.spec.configMap, this.abort.signal, {
      object: (cm) => {
        this.main = cm;
        this.syncShards();
        this.assemble();
      },
      connected: (on, error) => this.setConnected(on, error),
    });
  }

  close(): void {
    this.closed = true;
    this.abort.abort();
    for (const s of this.shards.values()) s.abort.abort();
  }

  /** Connected: the last GETs and the watches since then have worked, so the API is the newest source. */
  healthy(): boolean {
    return this.connected && [...this.shards.values()].every((s) => s.connected);
  }

  status(): SourceStatus {
    const { namespace, configMap, secret } = this.spec;
    return {
      uri: `kubernetes://${namespace}/${configMap}${secret ? `?secret=${secret}` : ""}`,
      connected: this.healthy(),
      ...(this.version ? { version: this.version } : {}),
      ...(this.lastError ? { last_error: this.lastError } : {}),
      since: this.since.toISOString(),
    };
  }

  private get cmPath(): string {
    return `/api/v1/namespaces/${this.spec.namespace}/configmaps`;
  }

  /**
   * GET one ConfigMap, then WATCH it by name (the Role grants get and watch on exactly these
   * names; a labelled list would need `list` on every ConfigMap of the namespace), forever.
   */
  private async follow(
    name: string,
    signal: AbortSignal,
    on: { object: (cm: ConfigMapObject) => void; connected: (on: boolean, error?: string) => void },
  ): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    while (!this.closed && !signal.aborted) {
      try {
        const cm = await getObject<ConfigMapObject>(this.conn, `${this.cmPath}/${name}`, signal);
        if (!cm) throw new KubeApiError(404, "NotFound");
        let rv = cm.metadata?.resourceVersion ?? "";
        on.object(cm);
        on.connected(true);
        backoff = MIN_BACKOFF_MS;
        while (!this.closed && !signal.aborted) {
          const q = new URLSearchParams({
            fieldSelector: `metadata.name=${name}`,
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
              if (ev.type === "ADDED" || ev.type === "MODIFIED") on.object(ev.object);
              // DELETED: the gateway is going away (or a shard was retired); the pods keep the
              // config they have.
            },
            signal,
            (WATCH_SECONDS + 30) * 1000,
          );
        }
      } catch (e) {
        if (this.closed || signal.aborted) return;
        on.connected(false, `${name}: ${describe(e)}`);
        const wait = backoff / 2 + Math.random() * (backoff / 2);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        await new Promise((r) => setTimeout(r, wait).unref());
      }
    }
  }

  /** One watch per shard the main ConfigMap's manifest names; a retired shard's watch ends. */
  private syncShards(): void {
    const wanted = new Set(Object.keys(this.manifest()?.shards ?? {}));
    for (const [name, s] of this.shards) {
      if (wanted.has(name)) continue;
      s.abort.abort();
      this.shards.delete(name);
    }
    for (const name of wanted) {
      if (this.shards.has(name)) continue;
      const s = { abort: new AbortController(), cm: undefined as ConfigMapObject | undefined, connected: false };
      // Not healthy until its first GET: file changes still count meanwhile.
      this.shards.set(name, s);
      void this.follow(name, AbortSignal.any([this.abort.signal, s.abort.signal]), {
        object: (cm) => {
          s.cm = cm;
          this.assemble();
        },
        connected: (on, error) => {
          s.connected = on;
          if (!on) this.offered = ""; // once back, the API's revision is offered again (it wins)
          if (error) this.lastError = error;
          if (!on) this.logger.warn("config shard unreachable; retrying", { error });
        },
      });
    }
  }

  private manifest(): ShardManifest | undefined {
    const text = this.main?.data?.[SHARD_MANIFEST];
    if (text === undefined) return undefined;
    try {
      return parseManifest(text);
    } catch (e) {
      this.logger.warn("config source: unreadable shard manifest; waiting for the next revision", {
        error: (e as Error).message,
      });
      return { shards: { [`${this.spec.configMap} (manifest)`]: "" } }; // never whole
    }
  }

  /**
   * Offers the tree once every shard the manifest names is at the manifest's digest: a set the
   * operator is halfway through writing (it writes the shards, then the main ConfigMap) is never
   * served, so no pipeline disappears for a moment.
   */
  private assemble(): void {
    const main = this.main;
    if (!main) return;
    const manifest = this.manifest();
    const files: Record<string, string> = { ...(main.data ?? {}) };
    const versions = [main.metadata?.resourceVersion ?? ""];
    const waiting: string[] = [];
    for (const [name, digest] of Object.entries(manifest?.shards ?? {})) {
      const cm = this.shards.get(name)?.cm;
      if (cm?.data?.[shardDigestKey(name)] !== digest) {
        waiting.push(name);
        continue;
      }
      Object.assign(files, cm.data);
      versions.push(cm.metadata?.resourceVersion ?? "");
    }
    if (waiting.length) {
      // Once per state: the operator writes shards before the main ConfigMap, so one line per edit.
      const state = `${main.metadata?.resourceVersion}:${waiting.join(",")}`;
      if (state !== this.waitingFor)
        this.logger.info("config shards not all at the manifest's revision yet; serving the current config", {
          waiting_for: waiting.slice(0, 5),
        });
      this.waitingFor = state;
      return;
    }
    this.waitingFor = "";
    const key = versions.join(",");
    if (key === this.offered) return;
    this.offered = key;
    this.offer({ metadata: { resourceVersion: versions.join("+") }, data: files });
  }

  private setConnected(on: boolean, error?: string): void {
    if (error) this.lastError = error;
    // Files may have been taken while away: once back, the API's revision is offered again (it wins).
    if (!on) this.offered = "";
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
