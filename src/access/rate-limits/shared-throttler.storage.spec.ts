import fc from 'fast-check';
import { HitCount, RateLimitStore } from './rate-limit.store';
import { InMemoryRateLimitStore } from './memory/in-memory-rate-limit.store';
import { MAX_RESERVED_HITS, SharedThrottlerStorage } from './shared-throttler.storage';

/** The shared store, counting the calls made to it. */
class CountingStore extends RateLimitStore {
  calls = 0;
  constructor(private readonly inner = new InMemoryRateLimitStore()) {
    super();
  }
  countHit(key: string, windowMs: number, limit: number, blockMs: number, hits?: number) {
    this.calls++;
    return this.inner.countHit(key, windowMs, limit, blockMs, hits);
  }
}

const WINDOW = 60_000;
const BLOCK = 5_000;

describe('SharedThrottlerStorage', () => {
  afterEach(() => jest.useRealTimers());

  it('with a limit under 200, makes one store call per hit, as before', async () => {
    const store = new CountingStore();
    const storage = new SharedThrottlerStorage(store);
    const totals = [];
    for (let i = 0; i < 150; i++) {
      totals.push((await storage.increment('k', WINDOW, 199, BLOCK)).totalHits);
    }
    expect(store.calls).toBe(150);
    expect(totals).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
  });

  it('serves a caller who keeps sending from reservations: few store calls, the same totals', async () => {
    const store = new CountingStore();
    const storage = new SharedThrottlerStorage(store);
    const totals = [];
    for (let i = 0; i < 3_000; i++) {
      totals.push((await storage.increment('k', WINDOW, 1_000_000, BLOCK)).totalHits);
    }
    expect(totals).toEqual(Array.from({ length: 3_000 }, (_, i) => i + 1));
    // 1, 2, 4, ..., 256, then 256 at a time: 9 + 10 calls.
    expect(store.calls).toBeLessThanOrEqual(9 + Math.ceil((3_000 - 511) / MAX_RESERVED_HITS));
  });

  it('hands concurrent requests distinct totals while one reservation is on its way', async () => {
    const store = new CountingStore();
    const storage = new SharedThrottlerStorage(store);
    const records = await Promise.all(
      Array.from({ length: 300 }, () => storage.increment('k', WINDOW, 100_000, BLOCK)),
    );
    const totals = records.map((record) => record.totalHits).sort((a, b) => a - b);
    expect(totals).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(records.every((record) => !record.isBlocked)).toBe(true);
    expect(store.calls).toBeLessThan(20);
  });

  it('lets no caller past the limit across processes, and refuses at most 1% early per process', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 200, max: 3_000 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 4_000 }),
        async (limit, processes, senders) => {
          const shared = new InMemoryRateLimitStore();
          const storages = Array.from(
            { length: processes },
            () => new SharedThrottlerStorage(shared),
          );
          let accepted = 0;
          const totals = new Set<number>();
          for (const sender of senders) {
            const record = await storages[sender % processes].increment(
              'caller',
              WINDOW,
              limit,
              BLOCK,
            );
            if (!record.isBlocked && record.totalHits <= limit) {
              accepted++;
              expect(totals.has(record.totalHits)).toBe(false);
              totals.add(record.totalHits);
            }
          }
          expect(accepted).toBeLessThanOrEqual(limit);
          const early = processes * (Math.min(MAX_RESERVED_HITS, Math.floor(limit / 100)) - 1);
          expect(accepted).toBeGreaterThanOrEqual(Math.min(senders.length, limit) - early);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('drops what is left of a reservation when the window ends, and starts again at 1', async () => {
    jest.useFakeTimers({ now: 1_000_000, doNotFake: ['nextTick', 'setImmediate'] });
    const store = new CountingStore();
    const storage = new SharedThrottlerStorage(store);
    for (let i = 0; i < 40; i++) {
      await storage.increment('k', WINDOW, 100_000, BLOCK);
    }
    jest.setSystemTime(1_000_000 + WINDOW + 1);
    const next = await storage.increment('k', WINDOW, 100_000, BLOCK);
    expect(next.totalHits).toBe(1);
    expect(next.timeToExpire).toBe(WINDOW / 1000);
  });

  it('take: hands out reserved hits at once, in order with increment, none past the reservation or the window', async () => {
    jest.useFakeTimers({ now: 1_000_000, doNotFake: ['nextTick', 'setImmediate'] });
    const store = new CountingStore();
    const storage = new SharedThrottlerStorage(store);
    expect(storage.take('k')).toBeNull(); // nothing reserved yet
    for (let i = 0; i < 3; i++) {
      await storage.increment('k', WINDOW, 100_000, BLOCK); // reserves 1, then 2: 3 counted
    }
    expect(storage.take('k')).toBeNull(); // all 3 handed out
    await storage.increment('k', WINDOW, 100_000, BLOCK); // reserves 4, takes the first
    const calls = store.calls;
    const taken = [storage.take('k'), storage.take('k'), storage.take('k'), storage.take('k')];
    expect(store.calls).toBe(calls);
    expect(taken.map((record) => record?.totalHits ?? null)).toEqual([5, 6, 7, null]);
    expect(taken[0]).toEqual({
      totalHits: 5,
      timeToExpire: WINDOW / 1000,
      isBlocked: false,
      timeToBlockExpire: 0,
    });
    expect((await storage.increment('k', WINDOW, 100_000, BLOCK)).totalHits).toBe(8);
    jest.setSystemTime(1_000_000 + WINDOW + 1);
    expect(storage.take('k')).toBeNull(); // the window ended: what was left is worthless
    expect((await storage.increment('k', WINDOW, 100_000, BLOCK)).totalHits).toBe(1);
  });

  it('passes a store failure on, and the next request asks the store again', async () => {
    const failing = new (class extends RateLimitStore {
      calls = 0;
      countHit(): Promise<HitCount> {
        this.calls++;
        return Promise.reject(new Error('down'));
      }
    })();
    const storage = new SharedThrottlerStorage(failing);
    await expect(storage.increment('k', WINDOW, 100_000, BLOCK)).rejects.toThrow('down');
    await expect(storage.increment('k', WINDOW, 100_000, BLOCK)).rejects.toThrow('down');
    expect(failing.calls).toBe(2);
  });
});
