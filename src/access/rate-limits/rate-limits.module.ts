import { Module } from '@nestjs/common';
import { ThrottlerModule } from '@nestjs/throttler';
import { RateLimitSettings } from '../../config/app.settings';
import { IpcRateLimitStore, RateLimitChannel } from './ipc/ipc-rate-limit.store';
import { InMemoryRateLimitStore } from './memory/in-memory-rate-limit.store';
import { RateLimitStore } from './rate-limit.store';
import { RateLimitRedis, RedisRateLimitStore } from './redis/redis-rate-limit.store';
import { SharedThrottlerStorage } from './shared-throttler.storage';

/**
 * Where the counters live: where the conversations do, on the same connection. The
 * conversation store module (global) provides its Redis connection (STORE=redis) or its IPC
 * channel to the primary (a cluster worker), each null otherwise; with neither, this process
 * keeps them in memory (a single process, or the cluster's primary, which serves them to its
 * workers through its StoreHub).
 */
@Module({
  providers: [
    {
      provide: RateLimitStore,
      inject: [RateLimitRedis, RateLimitChannel],
      useFactory: (redis: RateLimitRedis | null, channel: RateLimitChannel | null) =>
        redis
          ? new RedisRateLimitStore(redis)
          : channel
            ? new IpcRateLimitStore(channel)
            : new InMemoryRateLimitStore(),
    },
  ],
  exports: [RateLimitStore],
})
export class RateLimitStoreModule {}

/**
 * @nestjs/throttler counting in the shared counters (SharedThrottlerStorage). The guard
 * (RateLimitGuard) is installed by AccessModule, first of the global guards.
 */
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      imports: [RateLimitStoreModule],
      inject: [RateLimitSettings, RateLimitStore],
      useFactory: (limits: RateLimitSettings, rateLimits: RateLimitStore) => ({
        // The limit itself is chosen per caller by RateLimitGuard.
        throttlers: [{ ttl: limits.windowMs, limit: limits.perClient }],
        storage: new SharedThrottlerStorage(rateLimits),
      }),
    }),
  ],
  exports: [ThrottlerModule],
})
export class RateLimitsModule {}
