import { randomUUID } from 'node:crypto';
import { RateLimitStore } from '../../src/access/rate-limits/rate-limit.store';

export interface RateLimitStoreHarness {
  store: RateLimitStore;
  /** Releases what setup took (processes, connections, keys). */
  teardown(): Promise<void>;
}

/**
 * What every implementation of the RateLimitStore port must do. Each implementation's spec
 * calls this with its own setup.
 */
export function rateLimitStoreContract(
  name: string,
  setup: () => Promise<RateLimitStoreHarness>,
): void {
  describe(`RateLimitStore contract: ${name}`, () => {
    let harness: RateLimitStoreHarness;
    let store: RateLimitStore;

    beforeEach(async () => {
      harness = await setup();
      store = harness.store;
    });

    afterEach(async () => {
      await harness.teardown();
    });

    it('counts rate-limit hits in a window, blocks past the limit, and starts again after the block', async () => {
      const key = `rl-${randomUUID()}`;
      const counts = [];
      for (let i = 0; i < 4; i++) {
        counts.push(await store.countHit(key, 60_000, 3, 150));
      }
      expect(counts.map((c) => c.totalHits)).toEqual([1, 2, 3, 4]);
      expect(counts.slice(0, 3).map((c) => c.blockedForMs)).toEqual([0, 0, 0]);
      for (const count of counts.slice(0, 3)) {
        expect(count.windowEndsInMs).toBeGreaterThan(59_000);
        expect(count.windowEndsInMs).toBeLessThanOrEqual(60_000);
      }
      expect(counts[3].blockedForMs).toBeGreaterThan(100);
      expect(counts[3].blockedForMs).toBeLessThanOrEqual(150);

      // While blocked, hits are refused and not counted; other keys are not affected.
      const blocked = await store.countHit(key, 60_000, 3, 150);
      expect(blocked.blockedForMs).toBeGreaterThan(0);
      expect(blocked.totalHits).toBeGreaterThan(3);
      expect((await store.countHit(`${key}-other`, 60_000, 3, 150)).totalHits).toBe(1);

      await new Promise((resolve) => setTimeout(resolve, 200));
      const after = await store.countHit(key, 60_000, 3, 150);
      expect(after).toMatchObject({ totalHits: 1, blockedForMs: 0 });
    });

    it('counts several hits at once as far as they fit, then one at a time as usual', async () => {
      const key = `rl-${randomUUID()}`;
      expect(await store.countHit(key, 60_000, 10, 150, 4)).toMatchObject({
        totalHits: 4,
        counted: 4,
        blockedForMs: 0,
      });
      // Only 6 fit of the 8 wanted: those are counted, and nothing is blocked.
      expect(await store.countHit(key, 60_000, 10, 150, 8)).toMatchObject({
        totalHits: 10,
        counted: 6,
        blockedForMs: 0,
      });
      // None fits: one hit is counted, the one past the limit, which blocks as usual.
      const past = await store.countHit(key, 60_000, 10, 150, 8);
      expect(past).toMatchObject({ totalHits: 11, counted: 1 });
      expect(past.blockedForMs).toBeGreaterThan(100);
      // While blocked, nothing is counted.
      expect((await store.countHit(key, 60_000, 10, 150, 8)).counted).toBe(0);
      // One hit by default.
      expect(await store.countHit(`${key}-other`, 60_000, 10, 150)).toMatchObject({
        totalHits: 1,
        counted: 1,
      });
    });

    it('counts concurrent hits exactly once each', async () => {
      const key = `rl-${randomUUID()}`;
      const counts = await Promise.all(
        Array.from({ length: 50 }, () => store.countHit(key, 60_000, 100, 1_000)),
      );
      expect(counts.map((c) => c.totalHits).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
    });
  });
}
