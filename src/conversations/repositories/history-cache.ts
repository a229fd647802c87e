import { HistoryVersion } from '../conversation.repository';

interface Entry extends HistoryVersion {
  pieces: string[];
  /** What the entry is charged against the bound: its text plus ENTRY_CHARS. */
  chars: number;
  /** When it was last read or stored. */
  readAt: number;
}

/**
 * Characters each entry is charged besides its text: its map slot, version, piece array and
 * the strings' headers, so that many short histories are bounded as well as a few long ones.
 */
export const ENTRY_CHARS = 512;

/** Characters of histories a process keeps copies of (a worker's, or a Redis store's): 16 M. */
export const HISTORY_CACHE_CHARS = 16 * 1024 * 1024;

/**
 * A worker's copies of the histories it has served, each valid for exactly one version of
 * its conversation (one life and last seq, see HistoryVersion). Not state that any other
 * process needs: the primary's store stays the truth, and a copy is used only after the
 * primary confirms its version is current.
 * Bounded by characters held (each entry charged ENTRY_CHARS besides its text); the least
 * recently read go first, and an entry not read for `idleMs` (the conversations' TTL: its
 * conversation is evicted or nobody reads it) is dropped when it is next looked up, and the
 * idle ones at the front are swept whenever a copy is stored, so no timer is kept per entry
 * (a worker that stores no copy any more keeps its idle ones, within the bound).
 */
export class HistoryCache {
  /** In order of last read: the least recently read first. */
  private readonly entries = new Map<string, Entry>();
  private chars = 0;

  constructor(
    private readonly maxChars: number,
    private readonly idleMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(conversationId: string): Entry | undefined {
    const entry = this.entries.get(conversationId);
    if (!entry) {
      return undefined;
    }
    const now = this.now();
    this.entries.delete(conversationId);
    if (now - entry.readAt >= this.idleMs) {
      this.chars -= entry.chars;
      return undefined;
    }
    entry.readAt = now;
    this.entries.set(conversationId, entry);
    return entry;
  }

  set(conversationId: string, { life, version }: HistoryVersion, pieces: string[]): void {
    this.delete(conversationId);
    let chars = ENTRY_CHARS;
    for (const piece of pieces) {
      chars += piece.length;
    }
    const now = this.now();
    this.dropIdle(now);
    if (chars > this.maxChars) {
      return;
    }
    this.entries.set(conversationId, { life, version, pieces, chars, readAt: now });
    this.chars += chars;
    for (const [id, entry] of this.entries) {
      if (this.chars <= this.maxChars) {
        break;
      }
      this.entries.delete(id);
      this.chars -= entry.chars;
    }
  }

  delete(conversationId: string): void {
    const entry = this.entries.get(conversationId);
    if (entry) {
      this.entries.delete(conversationId);
      this.chars -= entry.chars;
    }
  }

  /** The entries are in order of last read, so the idle ones are a prefix. */
  private dropIdle(now: number): void {
    for (const [id, entry] of this.entries) {
      if (now - entry.readAt < this.idleMs) {
        return;
      }
      this.entries.delete(id);
      this.chars -= entry.chars;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** What the entries are charged against the bound, in characters. */
  get charged(): number {
    return this.chars;
  }
}
