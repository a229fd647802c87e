/** A rate-limit counter after one or more hits (see RateLimitStore.countHit). */
export interface HitCount {
  /** Hits in the current window, these included. */
  totalHits: number;
  /** How many hits this call counted: `hits`, fewer when only fewer fitted, or 1. */
  counted: number;
  /** Until the window ends. */
  windowEndsInMs: number;
  /** Until the block ends when the limit has been passed; else 0. */
  blockedForMs: number;
}

/**
 * The rate-limit port: counters kept where the conversations are (in this process, in the
 * cluster's primary, or in Redis), so that every worker and instance counts against the same
 * number. Rejects with the store's StoreError (store_unavailable, store_full) when the store
 * cannot answer. The implementations: memory/, ipc/ and redis/ beside this file, chosen in
 * rate-limits.module.ts.
 */
export abstract class RateLimitStore {
  /**
   * Counts one request against a rate limit, in a fixed window of `windowMs` that begins with
   * its first hit. The hit that passes `limit` blocks the counter for `blockMs`; while
   * blocked, hits are not counted.
   *
   * With `hits` above 1, counts as many of them as fit under the limit at once (a process
   * reserving hits ahead, see SharedThrottlerStorage); when none fits, counts one, as above.
   */
  abstract countHit(
    key: string,
    windowMs: number,
    limit: number,
    blockMs: number,
    hits?: number,
  ): Promise<HitCount>;
}
