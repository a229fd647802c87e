import { HitCount, RateLimitStore } from '../../rate-limit.store';
import { RedisStoreConnection } from './redis-connection';

/**
 * Rate-limit counters in Redis (keys `<prefix>rl:{<key>}` and its block, see RedisKeys), one
 * script per hit (hit-2.lua), on the connection the process's RedisConversationRepository
 * opened: every instance counts against the same number.
 */
export class RedisRateLimitStore extends RateLimitStore {
  constructor(private readonly connection: RedisStoreConnection) {
    super();
  }

  async countHit(
    key: string,
    windowMs: number,
    limit: number,
    blockMs: number,
    hits = 1,
  ): Promise<HitCount> {
    const { commands, keys } = this.connection;
    const [totalHits, windowEndsInMs, blockedForMs, counted] = await this.connection.run(() =>
      commands.chatHit(...keys.hitCounter(key), windowMs, limit, blockMs, hits),
    );
    return { totalHits, counted, windowEndsInMs, blockedForMs };
  }
}
