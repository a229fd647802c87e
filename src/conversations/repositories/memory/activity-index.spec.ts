import fc from 'fast-check';
import { Active, ActivityIndex } from './activity-index';

const member = (id: string, idleFrom: number): Active => ({ id, idleFrom });

describe('ActivityIndex', () => {
  it('finds members in any generation and counts them', () => {
    const index = new ActivityIndex<Active>(100);
    index.add(member('a', 5));
    index.add(member('b', 150));
    index.add(member('c', 1_000));
    expect(index.get('a')?.idleFrom).toBe(5);
    expect(index.get('b')?.idleFrom).toBe(150);
    expect(index.get('c')?.idleFrom).toBe(1_000);
    expect(index.get('d')).toBeUndefined();
    expect(index.size).toBe(3);
  });

  it('drops whole generations and walks only the one the cutoff falls in', async () => {
    const index = new ActivityIndex<Active>(100);
    for (let t = 0; t < 1_000; t += 10) {
      index.add(member(`m${t}`, t));
    }
    expect(await index.evictBefore(455)).toBe(46); // 0, 10, ..., 450
    expect(index.get('m450')).toBeUndefined();
    expect(index.get('m460')).toBeDefined();
    expect(index.size).toBe(54);
    expect(await index.evictBefore(455)).toBe(0);
  });

  it('keeps a member alive when it is touched, even out of its old generation', async () => {
    const index = new ActivityIndex<Active>(100);
    const a = member('a', 10);
    index.add(a);
    index.add(member('b', 20));
    index.touch(a, 950);
    expect(await index.evictBefore(500)).toBe(1);
    expect(index.get('a')).toBe(a);
    expect(a.idleFrom).toBe(950);
    // A touch with an earlier time never moves activity back.
    index.touch(a, 100);
    expect(a.idleFrom).toBe(950);
    expect(await index.evictBefore(900)).toBe(0);
    expect(index.size).toBe(1);
  });

  it('evicts an expired member that arrived after a live one of its generation', async () => {
    const index = new ActivityIndex<Active>(100);
    index.add(member('late clock', 50));
    index.add(member('early clock', 10));
    expect(await index.evictBefore(40)).toBe(1);
    expect(index.get('early clock')).toBeUndefined();
    expect(index.get('late clock')).toBeDefined();
  });

  it('ignores a touch of a member evicted already', async () => {
    const index = new ActivityIndex<Active>(100);
    const a = member('a', 10);
    index.add(a);
    expect(await index.evictBefore(50)).toBe(1);
    index.touch(a, 500);
    expect(index.get('a')).toBeUndefined();
    expect(index.size).toBe(0);
  });

  it('agrees with a plain model under any sequence of adds, touches and sweeps', async () => {
    type Weighted = Active & { weight: number };
    type Step = { kind: 'add' | 'touch' | 'evict'; key: number; time: number; change: number };
    const step = fc.record({
      kind: fc.constantFrom<'add' | 'touch' | 'evict'>('add', 'touch', 'evict'),
      key: fc.integer({ min: 0, max: 20 }),
      time: fc.integer({ min: 0, max: 2_000 }),
      change: fc.integer({ min: -2, max: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { maxLength: 80 }),
        fc.integer({ min: 1, max: 300 }),
        async (steps: Step[], span) => {
          const index = new ActivityIndex<Weighted>(span, (m) => [m.weight, 2 * m.weight]);
          const model = new Map<string, { time: number; weight: number }>();
          for (const { kind, key, time, change } of steps) {
            const id = `k${key}`;
            const known = model.get(id);
            if (kind === 'add' && !known) {
              index.add({ id, idleFrom: time, weight: key % 4 });
              model.set(id, { time, weight: key % 4 });
            } else if (kind === 'touch' && known) {
              const found = index.get(id);
              expect(found).toBeDefined();
              const applied = Math.max(change, -known.weight);
              (found as Weighted).weight += applied;
              index.touch(found as Weighted, time, [applied, 2 * applied]);
              model.set(id, { time: Math.max(known.time, time), weight: known.weight + applied });
            } else if (kind === 'evict') {
              const expected = [...model].filter(([, m]) => m.time < time).map(([k]) => k);
              expect(await index.evictBefore(time)).toBe(expected.length);
              expected.forEach((k) => model.delete(k));
            }
            expect(index.size).toBe(model.size);
            const total = [...model.values()].reduce((sum, m) => sum + m.weight, 0);
            expect(index.weight()).toBe(total);
            expect(index.weight(1)).toBe(2 * total);
          }
          for (const [id, { time }] of model) {
            expect(index.get(id)?.idleFrom).toBe(time);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
