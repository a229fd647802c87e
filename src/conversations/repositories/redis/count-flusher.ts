import { RedisStoreConnection } from './redis-connection';

/** How long message-count changes are added up before they are sent. */
const MESSAGE_COUNT_FLUSH_MS = 200;

/**
 * The store-wide message counter ({meta} `messages`), changed by posts and deletes. The
 * changes of MESSAGE_COUNT_FLUSH_MS are added up here and sent as one HINCRBY, not one per
 * write: the counter lives under {meta}, a slot of its own, so it cannot join the write's
 * script, and a command per post cost the worker as much as a third of its Redis work. A
 * process's stats() sends what it holds first; a process that dies loses at most that
 * window's changes, which only skews the gauge.
 */
export class MessageCountFlusher {
  /** Changes not yet sent. */
  private pending = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly connection: RedisStoreConnection) {}

  /** Adds a post's (+1) or a delete's (-1) change, sent with the next flush. */
  count(change: number): void {
    this.pending += change;
    this.timer ??= setTimeout(() => void this.flush(), MESSAGE_COUNT_FLUSH_MS);
    this.timer.unref();
  }

  /** Sends what is pending now; if Redis is away, it waits for the next flush. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const change = this.pending;
    if (change === 0) {
      return;
    }
    this.pending = 0;
    try {
      await this.connection.commands.hincrby(this.connection.keys.meta, 'messages', change);
    } catch {
      this.count(change);
    }
  }
}
