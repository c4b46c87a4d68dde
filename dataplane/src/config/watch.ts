/**
 * Notices config changes on disk. Watches directories, not files: Kubernetes updates a mounted
 * ConfigMap by swapping the `..data` symlink, which a file watch never sees. Every event (and a
 * periodic poll, for filesystems where events do not arrive) recomputes a content fingerprint;
 * only a real change calls back.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";

export interface WatchOptions {
  /** Directories to watch for events (where config files live or may appear). */
  dirs: () => string[];
  /** The files whose content is the config: only a change to one of these is a change. */
  files: () => string[];
  onChange: () => void;
  debounceMs?: number;
  pollMs?: number;
}

export class ConfigWatcher {
  private watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private poller: NodeJS.Timeout | undefined;
  private last: string;
  private closed = false;

  constructor(private readonly opts: WatchOptions) {
    this.last = fingerprint(opts.files());
    this.arm();
    const poll = opts.pollMs ?? 2000;
    if (poll > 0) {
      this.poller = setInterval(() => this.check(), poll);
      this.poller.unref();
    }
  }

  /** Marks the current content as seen (after a reload triggered some other way). */
  resync(): void {
    this.last = fingerprint(this.opts.files());
    this.arm();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.poller);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private arm(): void {
    if (this.closed) return;
    const wanted = new Set(this.opts.dirs());
    for (const [dir, w] of this.watchers) {
      if (!wanted.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of wanted) {
      // Re-arm every time: a watch on a directory reached through a swapped symlink goes stale.
      this.watchers.get(dir)?.close();
      this.watchers.delete(dir);
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule());
        w.on("error", () => {
          w.close();
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, w);
      } catch {
        // Directory absent (e.g. no pipelines/ yet): the poll will notice when it appears.
      }
    }
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), this.opts.debounceMs ?? 100);
    this.timer.unref();
  }

  private check(): void {
    if (this.closed) return;
    const now = fingerprint(this.opts.files());
    if (now === this.last) return;
    this.last = now;
    this.arm();
    this.opts.onChange();
  }
}

/** sha256 over the names and contents of `files` (symlinks followed; a missing file counts as such). */
export function fingerprint(files: string[]): string {
  const h = createHash("sha256");
  for (const file of [...new Set(files)].sort()) {
    h.update(file).update("\0");
    try {
      h.update(readFileSync(file));
    } catch {
      h.update("\0missing"); // vanished mid-swap: the next event or poll sees the settled state
    }
    h.update("\0");
  }
  return h.digest("hex");
}

/** Files in `dir` whose name passes `keep` (kubelet's `..` entries skipped; they are reached through the links). */
export function listFiles(dir: string, keep: (name: string) => boolean): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => !n.startsWith("..") && keep(n))
      .map((n) => join(dir, n))
      .filter((f) => {
        try {
          return statSync(f).isFile();
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}
