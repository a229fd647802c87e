/** A rate-limit counter after one more hit (see RateLimitStore.countHit). */
export interface HitCount {
  /** Hits in the current window, this one included. */
  totalHits: number;
  /** Until the window ends. */
  windowEndsInMs: number;
  /** Until the block ends when the limit has been passed; else 0. */
  blockedForMs: number;
}

/**
 * The rate-limit port: counters kept where the conversations are (in this process, in the
 * cluster's primary, or in Redis), so that every worker and instance counts against the same
 * number. Rejects with a StoreError (see conversation.errors.ts) when the store cannot answer.
 */
export abstract class RateLimitStore {
  /**
   * Counts one request against a rate limit, in a fixed window of `windowMs` that begins with
   * its first hit. The hit that passes `limit` blocks the counter for `blockMs`; while
   * blocked, hits are not counted.
   */
  abstract countHit(
    key: string,
    windowMs: number,
    limit: number,
    blockMs: number,
  ): Promise<HitCount>;
}
