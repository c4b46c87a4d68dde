/**
 * Long-lived things plugins share across config generations: connection pools above all. A
 * reload that keeps a backend's options keeps its warm pool; a pool no generation uses any more
 * is closed once the requests still running on it have finished.
 */
export interface Closable {
  close(): Promise<unknown>;
}

export class SharedResources {
  private readonly items = new Map<string, Closable>();
  private collecting: Set<string> | undefined;

  /** Returns the resource under `key`, creating it on first use. */
  acquire<T extends Closable>(key: string, create: () => T): T {
    this.collecting?.add(key);
    let item = this.items.get(key);
    if (!item) {
      item = create();
      this.items.set(key, item);
    }
    return item as T;
  }

  /** Records which keys a config generation acquires while it is built. */
  collect<R>(fn: () => R): { result: R; keys: Set<string> } {
    const keys = new Set<string>();
    const prev = this.collecting;
    this.collecting = keys;
    try {
      return { result: fn(), keys };
    } finally {
      this.collecting = prev;
    }
  }

  /** Closes every resource whose key is not in `keep`. */
  async retain(keep: Set<string>): Promise<void> {
    const closing: Promise<unknown>[] = [];
    for (const [key, item] of this.items) {
      if (keep.has(key)) continue;
      this.items.delete(key);
      closing.push(item.close().catch(() => undefined));
    }
    await Promise.all(closing);
  }

  async closeAll(): Promise<void> {
    await this.retain(new Set());
  }
}
