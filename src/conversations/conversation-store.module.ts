import { Module } from '@nestjs/common';
import cluster from 'node:cluster';
import { AppConfig, appConfig, clusterNodeList, storeByteBudget } from '../config/app.config';
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

/** About 30 activity generations per TTL, none narrower than a second (see ActivityIndex). */
function generationWidth(ttlMs: number): number {
  return Math.max(1_000, Math.ceil(ttlMs / 30));
}

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
      inject: [appConfig.KEY, MetricsService],
      useFactory: async (
        config: AppConfig,
        metrics: MetricsService,
      ): Promise<ConversationRepository> => {
        if (config.STORE === 'redis') {
          // A cluster worker, started by a primary that has connected, may be replaced while
          // Redis is down and must not crash for it.
          const mustConnect = !cluster.isWorker;
          const seeds = clusterNodeList(config.REDIS_CLUSTER_NODES) ?? [];
          const options = {
            replayLimit: config.EVENT_REPLAY_LIMIT,
            waitReplicas: config.REDIS_WAIT_REPLICAS,
            waitTimeoutMs: config.REDIS_WAIT_TIMEOUT_MS,
            timeoutMs: config.STORE_TIMEOUT_MS,
          };
          return seeds.length > 0
            ? new RedisConversationRepository(
                await connectRedisCluster(seeds, config.STORE_TIMEOUT_MS, { mustConnect }),
                config.REDIS_KEY_PREFIX,
                redactClusterSeeds(seeds),
                options,
              )
            : new RedisConversationRepository(
                await connectRedis(config.REDIS_URL, config.STORE_TIMEOUT_MS, { mustConnect }),
                config.REDIS_KEY_PREFIX,
                redactRedisUrl(config.REDIS_URL),
                options,
              );
        }
        return cluster.isWorker
          ? new IpcConversationRepository(processPort(), config.STORE_TIMEOUT_MS, (op, ok, s) =>
              metrics.observeStoreCall(op, ok, s),
            )
          : new InMemoryConversationRepository(
              generationWidth(config.CONVERSATION_TTL_MS),
              config.EVENT_REPLAY_LIMIT,
              storeByteBudget(config),
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
