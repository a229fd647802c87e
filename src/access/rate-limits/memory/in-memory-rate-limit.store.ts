import { HitCount, RateLimitStore } from '../rate-limit.store';

interface Counter {
  hits: number;
  /** Date.now() at which the window ends. */
  windowEndsAt: number;
  /** Date.now() at which the block ends; 0 when not blocked. */
  blockedUntil: number;
}

/**
 * Rate-limit counters in memory, fixed windows: the single process's, or the cluster
 * primary's (its workers reach them over IPC). At most `maxCounters` are kept; a counter whose
 * window starts is moved to the back of the Map, so the ones dropped first when it is full
 * are those whose window began longest ago.
 */
export class InMemoryRateLimitStore extends RateLimitStore {
  private readonly counters = new Map<string, Counter>();

  constructor(private readonly maxCounters = 100_000) {
    super();
  }

  // twin: src/access/rate-limits/redis/hit-2.lua
  async countHit(
    key: string,
    windowMs: number,
    limit: number,
    blockMs: number,
    hits = 1,
  ): Promise<HitCount> {
    const now = Date.now();
    let counter = this.counters.get(key);
    if (counter && counter.blockedUntil > now) {
      return this.count(counter, now, 0);
    }
    // After a block, counting starts again in a new window.
    if (!counter || counter.windowEndsAt <= now || counter.blockedUntil !== 0) {
      this.counters.delete(key);
      counter = { hits: 0, windowEndsAt: now + windowMs, blockedUntil: 0 };
      this.counters.set(key, counter);
      while (this.counters.size > this.maxCounters) {
        this.counters.delete(this.counters.keys().next().value as string);
      }
    }
    const counted = Math.max(1, Math.min(hits, limit - counter.hits));
    counter.hits += counted;
    if (counter.hits > limit) {
      counter.blockedUntil = now + blockMs;
    }
    return this.count(counter, now, counted);
  }

  private count(counter: Counter, now: number, counted: number): HitCount {
    return {
      totalHits: counter.hits,
      counted,
      windowEndsInMs: counter.windowEndsAt - now,
      blockedForMs: Math.max(0, counter.blockedUntil - now),
    };
  }
}
