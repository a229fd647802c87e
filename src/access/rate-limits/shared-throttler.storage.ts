import { Injectable } from '@nestjs/common';
import { ThrottlerStorage } from '@nestjs/throttler';
import { ThrottlerStorageRecord } from '../../http/fast-path/throttler-guard';
import { HitCount, RateLimitStore } from './rate-limit.store';

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/**
 * The most hits a process reserves at once for one caller: 1% of the limit, at most this.
 * With a limit under 200 nothing is reserved ahead, and every hit is one store call.
 */
export const MAX_RESERVED_HITS = 256;
/** Callers with a reservation kept at once; past it, the expired ones are dropped. */
const MAX_ALLOWANCES = 10_000;

/** Hits this process has counted in the shared store ahead of its requests, for one caller. */
interface Allowance {
  /** The total (as the store counted it) that the next request gets. */
  next: number;
  /** Reserved hits not yet used. */
  left: number;
  /** Date.now() at which the store's window ends: what is left is then worthless. */
  endsAt: number;
  /** The size of the last reservation: each next one in the window is twice as large. */
  batch: number;
  /** A reservation on its way: the caller's other requests wait for it. */
  pending?: Promise<unknown>;
}

/**
 * The throttler's counters, kept by the rate-limit store (RateLimitStore) where the
 * conversations are: in this process, in the cluster's primary, or in Redis. So a limit is
 * counted once across every worker and instance, never once per worker.
 *
 * A caller who keeps sending costs a store call per reservation, not per request: while its
 * window lasts, this process counts hits for it in the store ahead of time, in reservations
 * that double from 1 up to 1% of the limit (at most MAX_RESERVED_HITS), and hands them out
 * locally. A reservation never counts hits past the limit, so no caller is ever let through
 * more than the limit. What a process reserved but did not use by the window's end was
 * counted all the same: a caller may be refused up to that many requests early, per process,
 * which is at most 1% of its limit each.
 */
@Injectable()
export class SharedThrottlerStorage implements ThrottlerStorage {
  private readonly allowances = new Map<string, Allowance>();

  constructor(private readonly store: RateLimitStore) {}

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
  ): Promise<ThrottlerStorageRecord> {
    const most = Math.min(MAX_RESERVED_HITS, Math.floor(limit / 100));
    if (most <= 1) {
      return this.record(await this.store.countHit(key, ttl, limit, blockDuration));
    }
    for (;;) {
      const reserved = this.take(key);
      if (reserved) {
        return reserved;
      }
      const allowance = this.allowances.get(key);
      if (allowance?.pending) {
        await allowance.pending.catch(() => undefined);
        continue;
      }
      return this.record(await this.reserve(key, ttl, limit, blockDuration, most, allowance));
    }
  }

  /**
   * A hit from what this process has reserved for `key`, with no store call and no await; null
   * when nothing is left (increment then reserves more). Drops a reservation whose window has
   * ended.
   */
  take(key: string): ThrottlerStorageRecord | null {
    const allowance = this.allowances.get(key);
    if (!allowance) {
      return null;
    }
    const now = Date.now();
    if (allowance.endsAt <= now) {
      if (!allowance.pending) {
        this.allowances.delete(key);
      }
      return null;
    }
    if (allowance.left <= 0) {
      return null;
    }
    allowance.left--;
    return this.record({
      totalHits: allowance.next++,
      counted: 1,
      windowEndsInMs: allowance.endsAt - now,
      blockedForMs: 0,
    });
  }

  /** Counts a reservation in the store; the calling request takes its first hit. */
  private async reserve(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    most: number,
    previous: Allowance | undefined,
  ): Promise<HitCount> {
    const batch = previous ? Math.min(most, previous.batch * 2) : 1;
    const allowance: Allowance = previous ?? { next: 0, left: 0, endsAt: 0, batch };
    const counting = this.store.countHit(key, ttl, limit, blockDuration, batch);
    allowance.pending = counting;
    if (!previous) {
      this.keep(key, allowance);
    }
    try {
      const count = await counting;
      allowance.batch = batch;
      allowance.endsAt = Date.now() + count.windowEndsInMs;
      allowance.left = count.blockedForMs > 0 ? 0 : count.counted - 1;
      // The request takes the first hit counted (blocked, none was: it gets the total as is).
      const first = count.totalHits - Math.max(1, count.counted) + 1;
      allowance.next = first + 1;
      return { ...count, totalHits: first };
    } finally {
      allowance.pending = undefined;
    }
  }

  private keep(key: string, allowance: Allowance): void {
    if (this.allowances.size >= MAX_ALLOWANCES) {
      const now = Date.now();
      for (const [other, kept] of this.allowances) {
        if (kept.endsAt <= now && !kept.pending) {
          this.allowances.delete(other);
        }
      }
      if (this.allowances.size >= MAX_ALLOWANCES) {
        this.allowances.clear(); // unused reservations are lost: callers are refused early
      }
    }
    this.allowances.set(key, allowance);
  }

  private record(count: HitCount): ThrottlerStorageRecord {
    return {
      totalHits: count.totalHits,
      timeToExpire: seconds(count.windowEndsInMs),
      isBlocked: count.blockedForMs > 0,
      timeToBlockExpire: seconds(count.blockedForMs),
    };
  }
}
