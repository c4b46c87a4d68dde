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
  /** Directories whose files make up the config. */
  dirs: () => string[];
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
    this.last = fingerprint(opts.dirs());
    this.arm();
    const poll = opts.pollMs ?? 2000;
    if (poll > 0) {
      this.poller = setInterval(() => this.check(), poll);
      this.poller.unref();
    }
  }

  /** Marks the current content as seen (after a reload triggered some other way). */
  resync(): void {
    this.last = fingerprint(this.opts.dirs());
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
    const now = fingerprint(this.opts.dirs());
    if (now === this.last) return;
    this.last = now;
    this.arm();
    this.opts.onChange();
  }
}

/** sha256 over the names and contents of the regular files in `dirs` (symlinks followed). */
export function fingerprint(dirs: string[]): string {
  const h = createHash("sha256");
  for (const dir of [...new Set(dirs)].sort()) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      h.update(`${dir}\0missing\0`);
      continue;
    }
    for (const name of names) {
      if (name.startsWith("..")) continue; // kubelet's timestamped dirs; reached through the links
      const file = join(dir, name);
      try {
        if (!statSync(file).isFile()) continue;
        h.update(file).update("\0").update(readFileSync(file)).update("\0");
      } catch {
        // Vanished between readdir and read: the next event or poll sees the settled state.
      }
    }
  }
  return h.digest("hex");
}
