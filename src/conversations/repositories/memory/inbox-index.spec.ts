import fc from 'fast-check';
import { initialState } from '../../records/conversation-state';
import type { ConversationRecord, Filed } from './memory-records';
import { SortedRecords } from './inbox-index';

/** A record as the index sees it: its id, and what it was filed under. */
function record(id: string, activity: number): ConversationRecord {
  return {
    id,
    evicted: false,
    filed: { activity } as Filed,
    ...initialState(),
  } as unknown as ConversationRecord;
}

const order = (a: ConversationRecord, b: ConversationRecord) =>
  (a.filed as Filed).activity - (b.filed as Filed).activity ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

describe('SortedRecords', () => {
  it('keeps (key, id) order through inserts, moves and removals, and walks from any place', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 30 }), fc.boolean()),
          { maxLength: 3_000 },
        ),
        (steps) => {
          const list = new SortedRecords('activity', 'activityChunk');
          const held = new Map<string, ConversationRecord>();
          for (const [n, key, remove] of steps) {
            const id = `c${n}`;
            const existing = held.get(id);
            if (existing) {
              list.remove(existing);
              held.delete(id);
            }
            if (!remove) {
              const added = record(id, key);
              list.insert(added);
              held.set(id, added);
            }
          }
          const expected = [...held.values()].sort(order);
          expect(list.size).toBe(expected.length);
          expect([...list.ascending()]).toEqual(expected);
          expect([...list.descending()]).toEqual([...expected].reverse());
          for (let i = 0; i < expected.length; i += 7) {
            const at = { key: (expected[i].filed as Filed).activity, id: expected[i].id };
            expect([...list.ascending(at)]).toEqual(expected.slice(i + 1));
            expect([...list.descending(at)]).toEqual(expected.slice(0, i).reverse());
          }
          // A place past every record, and one before every record.
          expect([...list.descending({ key: 1e9, id: '' })]).toEqual([...expected].reverse());
          expect([...list.ascending({ key: -1, id: '' })]).toEqual(expected);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('moves at most a chunk on inserts with one key, and prunes evicted records', () => {
    const list = new SortedRecords('activity', 'activityChunk');
    const records = Array.from({ length: 5_000 }, (_, i) =>
      record(`id-${String(i).padStart(5, '0')}`, 7),
    );
    // Inserted in reverse: every insert goes to the front of its key's run.
    for (const r of [...records].reverse()) {
      list.insert(r);
    }
    expect([...list.ascending()]).toEqual(records);
    records.forEach((r, i) => (r.evicted = i % 3 === 0));
    list.prune();
    expect([...list.ascending()]).toEqual(records.filter((r) => !r.evicted));
    expect(list.size).toBe(records.filter((r) => !r.evicted).length);
  });
});
