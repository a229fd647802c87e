import { HitCount, RateLimitStore } from '../rate-limit.store';

/**
 * A cluster worker's one IPC channel to the primary, as the counters use it: the conversation
 * store's (IpcStoreChannel, provided under this token by its module), so that a hit travels in
 * the same batch as the request's other store calls. Null outside a cluster worker.
 */
export abstract class RateLimitChannel {
  abstract call<T>(port: 'rateLimit', op: 'countHit', args: unknown[]): Promise<T>;
}

/**
 * A worker's rate-limit counters: kept by the primary's in-memory store (its StoreHub serves
 * the `rateLimit` port) and reached over the worker's IPC channel.
 */
export class IpcRateLimitStore extends RateLimitStore {
  constructor(private readonly channel: RateLimitChannel) {
    super();
  }

  countHit(
    key: string,
    windowMs: number,
    limit: number,
    blockMs: number,
    hits = 1,
  ): Promise<HitCount> {
    return this.channel.call('rateLimit', 'countHit', [key, windowMs, limit, blockMs, hits]);
  }
}
