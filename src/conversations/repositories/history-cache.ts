import { HistoryVersion } from '../conversation.repository';

interface Entry extends HistoryVersion {
  pieces: string[];
  chars: number;
}

/**
 * A worker's copies of the histories it has served, each valid for exactly one version of
 * its conversation (one life and last seq, see HistoryVersion). Not state that any other
 * process needs: the primary's store stays the truth, and a copy is used only after the
 * primary confirms its version is current.
 * Bounded by characters held; the least recently read go first.
 */
export class HistoryCache {
  private readonly entries = new Map<string, Entry>();
  private chars = 0;

  constructor(private readonly maxChars: number) {}

  get(conversationId: string): Entry | undefined {
    const entry = this.entries.get(conversationId);
    if (entry) {
      this.entries.delete(conversationId);
      this.entries.set(conversationId, entry);
    }
    return entry;
  }

  set(conversationId: string, { life, version }: HistoryVersion, pieces: string[]): void {
    this.delete(conversationId);
    let chars = 0;
    for (const piece of pieces) {
      chars += piece.length;
    }
    if (chars > this.maxChars) {
      return;
    }
    this.entries.set(conversationId, { life, version, pieces, chars });
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

  get size(): number {
    return this.entries.size;
  }
}
