/**
 * Where a reload's config comes from: the files on disk (watched) and, with --config-source, the
 * Kubernetes API. The files are the source at start and the fallback after; the API, once
 * connected, is the newer of the two (the kubelet writes the same revision up to a minute later,
 * or an older one when edits come quickly), so a file change counts only while the API is not
 * connected. A single process owns one of these, and so does a group's primary for all its
 * workers; a group's worker owns none and reloads what the primary tells it.
 */
import { resolve } from "node:path";
import type { Logger } from "winston";
import type { ConfigOverlay } from "../config/overlay.js";
import { ConfigWatcher, type WatchOptions } from "../config/watch.js";
import type { KubeConfigSource } from "../config/kube/source.js";
import type { GatewayOptions } from "./gateway-types.js";

export type KubeSourceOptions = NonNullable<GatewayOptions["kubeSource"]>;

export class ConfigSources {
  /** The newest revision from the API; undefined while the files are the source. */
  overlay: ConfigOverlay | undefined;
  private watcher: ConfigWatcher | undefined;
  private kube: KubeConfigSource | undefined;

  constructor(
    private readonly opts: {
      /** The main config file (the API's revision is laid out beside it). */
      configFile: string;
      logger: Logger;
      reload: (trigger: "file" | "kubernetes") => void;
    },
  ) {}

  /** Follows the files: what `dirs` and `files` name, from the digests a reload read (`seen`). */
  watchFiles(w: Omit<WatchOptions, "onChange">): void {
    this.watcher = new ConfigWatcher({ ...w, onChange: () => this.onFileChange() });
  }

  /** After a reload: what it read is the content served (see ConfigWatcher.resync). */
  resync(seen: Parameters<ConfigWatcher["resync"]>[0]): void {
    this.watcher?.resync(seen);
  }

  /** Follows the API as well; its revisions win over the files while it is connected. */
  async followKubernetes(src: KubeSourceOptions): Promise<void> {
    // Loaded only here: a data plane on plain files never reads this code.
    const { KubeConfigSource } = await import("../config/kube/source.js");
    const { inClusterConnection, kubeconfigConnection } = await import("../config/kube/api.js");
    const conn = src.kubeconfig ? kubeconfigConnection(src.kubeconfig) : inClusterConnection();
    const dir = resolve(this.opts.configFile, "..");
    const secretDir = src.spec.secretDir ? resolve(src.spec.secretDir) : undefined;
    this.kube = new KubeConfigSource(
      src.spec,
      conn,
      (rev) => {
        this.overlay = { dir, files: rev.files, secrets: rev.secrets, ...(secretDir ? { secretDir } : {}) };
        this.opts.reload("kubernetes");
      },
      this.opts.logger,
    );
    this.kube.start();
  }

  kubeStatus(): ReturnType<KubeConfigSource["status"]> | undefined {
    return this.kube?.status();
  }

  close(): void {
    this.watcher?.close();
    this.kube?.close();
  }

  private onFileChange(): void {
    if (this.kube?.healthy()) {
      this.opts.logger.debug("config files changed; ignored while the Kubernetes API source is connected");
      return;
    }
    this.overlay = undefined;
    this.opts.reload("file");
  }
}
