import { HitCount, RateLimitStore } from '../../rate-limit.store';
import { IpcStoreChannel } from './ipc-store-channel';

/**
 * A worker's rate-limit counters: kept by the primary's in-memory store and reached over the
 * worker's one IPC channel, shared with its IpcConversationRepository, so that a hit travels in
 * the same batch as the request's other store calls.
 */
export class IpcRateLimitStore extends RateLimitStore {
  constructor(private readonly channel: IpcStoreChannel) {
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
