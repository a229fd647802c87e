import { DueHeap } from './due-heap';

describe('DueHeap', () => {
  it('gives entries back by due time, ties in order of `order`', () => {
    const heap = new DueHeap<{ at: number; order: number; name: string }>();
    const entries = [
      { at: 30, order: 1, name: 'c' },
      { at: 10, order: 2, name: 'a2' },
      { at: 10, order: 1, name: 'a1' },
      { at: 20, order: 3, name: 'b' },
      { at: 5, order: 9, name: 'first' },
    ];
    entries.forEach((entry) => heap.push(entry));
    expect(heap.peek()?.name).toBe('first');
    const out: string[] = [];
    while (heap.size > 0) {
      out.push((heap.pop() as { name: string }).name);
    }
    expect(out).toEqual(['first', 'a1', 'a2', 'b', 'c']);
    expect(heap.pop()).toBeUndefined();
  });

  it('sorts any sequence as a sort would', () => {
    const heap = new DueHeap<{ at: number }>();
    const times = Array.from({ length: 500 }, (_, i) => (i * 7919) % 613);
    times.forEach((at) => heap.push({ at }));
    const out: number[] = [];
    for (let entry = heap.pop(); entry; entry = heap.pop()) {
      out.push(entry.at);
    }
    expect(out).toEqual([...times].sort((a, b) => a - b));
  });
});
