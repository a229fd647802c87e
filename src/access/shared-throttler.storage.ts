import { Injectable } from '@nestjs/common';
import { ThrottlerStorage } from '@nestjs/throttler';
import { ConversationRepository } from '../conversations/conversation.repository';

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/**
 * The throttler's counters, kept by the conversation store (ConversationRepository.countHit):
 * in this process, in the cluster's primary, or in Redis. So a limit is counted once across
 * every worker and instance, never once per worker.
 */
@Injectable()
export class SharedThrottlerStorage implements ThrottlerStorage {
  constructor(private readonly repository: ConversationRepository) {}

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
  ): Promise<ThrottlerStorageRecord> {
    const count = await this.repository.countHit(key, ttl, limit, blockDuration);
    return {
      totalHits: count.totalHits,
      timeToExpire: seconds(count.windowEndsInMs),
      isBlocked: count.blockedForMs > 0,
      timeToBlockExpire: seconds(count.blockedForMs),
    };
  }
}
