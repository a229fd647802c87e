/**
 * Entries by when they are due: a binary min-heap on `at`, ties broken by `order` when the
 * entries carry one (first in, first out). Stale entries are the caller's to skip: nothing is
 * removed but the top. Used by the snooze queue and the in-memory webhook queue.
 */
export class DueHeap<T extends { at: number; order?: number }> {
  private readonly heap: T[] = [];

  get size(): number {
    return this.heap.length;
  }

  /** The earliest entry, left in place; undefined when empty. */
  peek(): T | undefined {
    return this.heap[0];
  }

  push(entry: T): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) {
        break;
      }
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  /** Takes out the earliest entry. */
  pop(): T | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let least = i;
        if (left < heap.length && before(heap[left], heap[least])) {
          least = left;
        }
        if (right < heap.length && before(heap[right], heap[least])) {
          least = right;
        }
        if (least === i) {
          break;
        }
        [heap[i], heap[least]] = [heap[least], heap[i]];
        i = least;
      }
    }
    return top;
  }
}

function before(a: { at: number; order?: number }, b: { at: number; order?: number }): boolean {
  return a.at < b.at || (a.at === b.at && (a.order ?? 0) < (b.order ?? 0));
}
