import { Module } from '@nestjs/common';
import { PROCESS_ROLE, ProcessRole } from '../common/process-role';
import { EvictionSettings, RedisSettings, StoreSettings } from '../config/app.settings';
import { MetricsService } from '../observability/metrics.service';
import { ConversationRepository } from './conversation.repository';
import { InMemoryConversationRepository } from './repositories/memory/in-memory-conversation.repository';
import { processPort } from '../common/message-port';
import { IpcConversationRepository } from './repositories/ipc/ipc-conversation.repository';
import {
  connectRedis,
  connectRedisCluster,
  redactClusterSeeds,
  redactRedisUrl,
} from './repositories/redis/redis-client';
import { RedisConversationRepository } from './repositories/redis/redis-conversation.repository';
import { RateLimitStore } from './rate-limit.store';
import { InMemoryRateLimitStore } from './repositories/memory/in-memory-rate-limit.store';
import { IpcRateLimitStore } from './repositories/ipc/ipc-rate-limit.store';
import { RedisRateLimitStore } from './repositories/redis/redis-rate-limit.store';

/**
 * The rate-limit counters live where the conversations do, on the same connection: in Redis
 * on the conversation store's client, in a worker over its IPC channel to the primary, else in
 * this process's memory. So they follow the conversation store's choice (and a test's
 * replacement of it) without deciding again.
 */
function rateLimitStoreBeside(conversations: ConversationRepository): RateLimitStore {
  if (conversations instanceof RedisConversationRepository) {
    return new RedisRateLimitStore(conversations.connection);
  }
  if (conversations instanceof IpcConversationRepository) {
    return new IpcRateLimitStore(conversations.channel);
  }
  return new InMemoryRateLimitStore();
}

/**
 * Provides the storage ports; the implementations are chosen here and nowhere else. With
 * STORE=redis every process (primary and workers alike) talks to Redis directly: one Redis
 * (REDIS_URL), or a Redis Cluster (REDIS_CLUSTER_NODES). Otherwise a
 * cluster worker reaches the primary's store over IPC, and a single process or the primary
 * holds it in memory.
 */
@Module({
  providers: [
    {
      provide: ConversationRepository,
      inject: [StoreSettings, RedisSettings, PROCESS_ROLE, MetricsService, EvictionSettings],
      useFactory: async (
        store: StoreSettings,
        redis: RedisSettings,
        role: ProcessRole,
        metrics: MetricsService,
        eviction: EvictionSettings,
      ): Promise<ConversationRepository> => {
        if (store.kind === 'redis') {
          // A cluster worker, started by a primary that has connected, may be replaced while
          // Redis is down and must not crash for it.
          const mustConnect = role !== 'worker';
          const seeds = [...redis.clusterNodes];
          const options = {
            replayLimit: store.replayLimit,
            waitReplicas: redis.waitReplicas,
            waitTimeoutMs: redis.waitTimeoutMs,
            timeoutMs: store.timeoutMs,
            historyIdleMs: eviction.conversationTtlMs,
          };
          return seeds.length > 0
            ? new RedisConversationRepository(
                await connectRedisCluster(seeds, store.timeoutMs, { mustConnect }),
                redis.keyPrefix,
                redactClusterSeeds(seeds),
                options,
              )
            : new RedisConversationRepository(
                await connectRedis(redis.url, store.timeoutMs, { mustConnect }),
                redis.keyPrefix,
                redactRedisUrl(redis.url),
                options,
              );
        }
        return role === 'worker'
          ? new IpcConversationRepository(
              processPort(),
              store.timeoutMs,
              (op, ok, s) => metrics.observeStoreCall(op, ok, s),
              eviction.conversationTtlMs,
            )
          : new InMemoryConversationRepository(
              store.generationMs,
              store.replayLimit,
              store.byteBudget,
            );
      },
    },
    {
      provide: RateLimitStore,
      inject: [ConversationRepository],
      useFactory: rateLimitStoreBeside,
    },
  ],
  exports: [ConversationRepository, RateLimitStore],
})
export class ConversationStoreModule {}
