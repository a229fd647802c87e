import { Global, Module } from '@nestjs/common';
import { PROCESS_ROLE, ProcessRole } from '../cluster/process-role';
import { EvictionSettings, RedisSettings, StoreSettings } from '../config/app.settings';
import { MetricsService } from '../observability/metrics.service';
import { ConversationRepository } from './conversation.repository';
import { InMemoryConversationRepository } from './repositories/memory/in-memory-conversation.repository';
import { processPort } from '../cluster/message-port';
import { IpcConversationRepository } from './repositories/ipc/ipc-conversation.repository';
import {
  connectRedis,
  connectRedisCluster,
  redactClusterSeeds,
  redactRedisUrl,
} from './repositories/redis/redis-client';
import { RedisConversationRepository } from './repositories/redis/redis-conversation.repository';
import { RedisStoreConnection } from './repositories/redis/redis-connection';
import { IpcStoreChannel } from './repositories/ipc/ipc-store-channel';
import { CustomerTokenHashes } from '../access/customer-token-hashes';
import { RateLimitChannel } from '../access/rate-limits/ipc/ipc-rate-limit.store';
import { RateLimitRedis } from '../access/rate-limits/redis/redis-rate-limit.store';
import { SnapshotSource } from '../snapshot/snapshot-source';
import { WebhookChannel } from '../webhooks/ipc/ipc-webhook.store';
import { ChangeOutbox } from './change-outbox';

/**
 * What the factory opened: the repository, and the connection it opened for it, which other
 * ports' stores share (the rate-limit counters, see access/rate-limits/rate-limits.module.ts).
 */
interface OpenedStore {
  repository: ConversationRepository;
  /** STORE=redis: the process's Redis connection. */
  redis: RedisStoreConnection | null;
  /** A cluster worker: its IPC channel to the primary. */
  channel: IpcStoreChannel | null;
}

const OPENED_STORE = Symbol('OPENED_STORE');

/** The one outbox of this process's store (see change-outbox.ts): the webhooks attach to it. */
const OUTBOX_PROVIDER = { provide: ChangeOutbox, useFactory: () => new ChangeOutbox() };

/**
 * Provides the conversation store; the implementation is chosen here and nowhere else. With
 * STORE=redis every process (primary and workers alike) talks to Redis directly: one Redis
 * (REDIS_URL), or a Redis Cluster (REDIS_CLUSTER_NODES). Otherwise a
 * cluster worker reaches the primary's store over IPC, and a single process or the primary
 * holds it in memory.
 *
 * Global, so that access/ reads token hashes (CustomerTokenHashes) and the rate-limit counters
 * and webhooks share the store's connection (RateLimitRedis, RateLimitChannel, WebhookChannel)
 * through ports of their own,
 * without importing conversations/. The connection they share is the one opened here: a test
 * that replaces ConversationRepository still counts its rate limits in the configured store.
 */
@Global()
@Module({
  providers: [
    OUTBOX_PROVIDER,
    {
      provide: OPENED_STORE,
      inject: [
        StoreSettings,
        RedisSettings,
        PROCESS_ROLE,
        MetricsService,
        EvictionSettings,
        ChangeOutbox,
      ],
      useFactory: async (
        store: StoreSettings,
        redis: RedisSettings,
        role: ProcessRole,
        metrics: MetricsService,
        eviction: EvictionSettings,
        outbox: ChangeOutbox,
      ): Promise<OpenedStore> => {
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
            outbox,
          };
          const repository =
            seeds.length > 0
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
          return { repository, redis: repository.connection, channel: null };
        }
        if (role === 'worker') {
          const repository = new IpcConversationRepository(
            processPort(),
            store.timeoutMs,
            (op, ok, s) => metrics.observeStoreCall(op, ok, s),
            eviction.conversationTtlMs,
          );
          return { repository, redis: null, channel: repository.channel };
        }
        const repository = new InMemoryConversationRepository(
          store.generationMs,
          store.replayLimit,
          store.byteBudget,
          outbox,
        );
        return { repository, redis: null, channel: null };
      },
    },
    // The repository is a provider of its own, so that Nest runs its shutdown hook (once: an
    // alias's is not run).
    {
      provide: ConversationRepository,
      inject: [OPENED_STORE],
      useFactory: (opened: OpenedStore) => opened.repository,
    },
    { provide: CustomerTokenHashes, useExisting: ConversationRepository },
    {
      provide: RateLimitRedis,
      inject: [OPENED_STORE],
      useFactory: (opened: OpenedStore): RateLimitRedis | null => opened.redis,
    },
    {
      provide: RateLimitChannel,
      inject: [OPENED_STORE],
      useFactory: (opened: OpenedStore): RateLimitChannel | null => opened.channel,
    },
    {
      provide: WebhookChannel,
      inject: [OPENED_STORE],
      useFactory: (opened: OpenedStore): WebhookChannel | null => opened.channel,
    },
    {
      // Only a store in this process's memory is kept in a snapshot.
      provide: SnapshotSource,
      inject: [ConversationRepository],
      useFactory: (conversations: ConversationRepository): SnapshotSource | null =>
        conversations instanceof InMemoryConversationRepository ? conversations : null,
    },
  ],
  exports: [
    ChangeOutbox,
    ConversationRepository,
    CustomerTokenHashes,
    RateLimitRedis,
    RateLimitChannel,
    WebhookChannel,
    SnapshotSource,
  ],
})
export class ConversationStoreModule {}
