/**
 * Snoozed conversations by when they wake: a binary min-heap of (time, id). An entry whose
 * conversation was woken, snoozed again or evicted meanwhile is left in place and dropped
 * when it comes due (the caller checks the conversation), or by `delete`, lazily.
 */
export class SnoozeQueue {
  private readonly heap: { at: number; id: string }[] = [];
  private readonly dropped = new Set<string>();

  get size(): number {
    return this.heap.length;
  }

  add(id: string, at: number): void {
    this.dropped.delete(id);
    const heap = this.heap;
    heap.push({ at, id });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].at <= heap[i].at) {
        break;
      }
      [heap[parent], heap[i]] = [heap[i], heap[parent]];
      i = parent;
    }
  }

  /** Forgets a conversation's entries (evicted). */
  delete(id: string): void {
    this.dropped.add(id);
  }

  /** Takes out every entry due at `now`: the ids, each once, that were not deleted since. */
  due(now: number): string[] {
    const ids = new Set<string>();
    while (this.heap.length > 0 && this.heap[0].at <= now) {
      const { id } = this.pop();
      if (!this.dropped.has(id)) {
        ids.add(id);
      }
    }
    if (this.heap.length === 0) {
      this.dropped.clear();
    }
    return [...ids];
  }

  private pop(): { at: number; id: string } {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop() as { at: number; id: string };
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let least = i;
        if (left < heap.length && heap[left].at < heap[least].at) {
          least = left;
        }
        if (right < heap.length && heap[right].at < heap[least].at) {
          least = right;
        }
        if (least === i) {
          break;
        }
        [heap[least], heap[i]] = [heap[i], heap[least]];
        i = least;
      }
    }
    return top;
  }
}
