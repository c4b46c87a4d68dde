/**
 * Notices config changes on disk. Watches directories, not files: Kubernetes updates a mounted
 * ConfigMap by swapping the `..data` symlink, which a file watch never sees. Every event (and a
 * periodic poll, for filesystems where events do not arrive) recomputes a digest per file; only a
 * real change calls back. What counts as seen after a reload is what that reload read (digested
 * before it read it, see Gateway.doReload), never the files as they are once it is done: a change
 * written while a reload runs would otherwise be marked seen without ever being served.
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
  /** Digests of the content the running config was built from (default: the files as they are now). */
  seen?: Digests;
}

/** sha256 of each file's content by path ("missing" for a file that could not be read). */
export type Digests = ReadonlyMap<string, string>;

export class ConfigWatcher {
  private watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private poller: NodeJS.Timeout | undefined;
  private last: Digests;
  private closed = false;

  constructor(private readonly opts: WatchOptions) {
    this.last = opts.seen ?? digests(opts.files());
    this.arm();
    const poll = opts.pollMs ?? 2000;
    if (poll > 0) {
      this.poller = setInterval(() => this.check(), poll);
      this.poller.unref();
    }
  }

  /**
   * Marks `seen` (the digests of what a reload read) as the content served, after a reload
   * triggered some other way. A file that differs from it now is picked up by the next event or poll.
   */
  resync(seen: Digests): void {
    this.last = seen;
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
    const now = digests(this.opts.files());
    if (same(now, this.last)) return;
    this.last = now;
    this.arm();
    this.opts.onChange();
  }
}

/** The digest of each file's content (symlinks followed; a missing file counts as such). */
export function digests(files: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of files) if (!out.has(file)) out.set(file, digestFile(file));
  return out;
}

export function digestFile(file: string): string {
  try {
    return digestOf(readFileSync(file));
  } catch {
    return "missing"; // vanished mid-swap: the next event or poll sees the settled state
  }
}

export const digestOf = (content: string | Buffer) => createHash("sha256").update(content).digest("hex");

/** The same files with the same content (a file in one and not the other is a change). */
function same(a: Digests, b: Digests): boolean {
  if (a.size !== b.size) return false;
  for (const [f, d] of a) if (b.get(f) !== d) return false;
  return true;
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
