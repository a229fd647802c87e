import { DueHeap } from '../../../common/time/due-heap';

/**
 * Snoozed conversations by when they wake: a binary min-heap of (time, id). An entry whose
 * conversation was woken, snoozed again or evicted meanwhile is left in place and dropped
 * when it comes due (the caller checks the conversation), or by `delete`, lazily.
 */
export class SnoozeQueue {
  private readonly heap = new DueHeap<{ at: number; id: string }>();
  private readonly dropped = new Set<string>();

  get size(): number {
    return this.heap.size;
  }

  add(id: string, at: number): void {
    this.dropped.delete(id);
    this.heap.push({ at, id });
  }

  /** Forgets a conversation's entries (evicted). */
  delete(id: string): void {
    this.dropped.add(id);
  }

  /** Takes out every entry due at `now`: the ids, each once, that were not deleted since. */
  due(now: number): string[] {
    const ids = new Set<string>();
    while (this.heap.size > 0 && (this.heap.peek() as { at: number }).at <= now) {
      const { id } = this.heap.pop() as { at: number; id: string };
      if (!this.dropped.has(id)) {
        ids.add(id);
      }
    }
    if (this.heap.size === 0) {
      this.dropped.clear();
    }
    return [...ids];
  }
}
