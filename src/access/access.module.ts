import { CanActivate, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { JsonBodyGuard } from '../common/json-body.guard';
import { JsonBodyParser } from '../common/json-body.parser';
import { RateLimitSettings } from '../config/app.settings';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { RateLimitStore } from '../conversations/rate-limit.store';
import { AccessGuard } from './access.guard';
import { AccessService } from './access.service';
import { RateLimitGuard } from './rate-limit.guard';
import { SharedThrottlerStorage } from './shared-throttler.storage';

/**
 * Access control (API keys, customer tokens) and rate limits, as global guards in this order
 * (the order of the providers below): the rate limit first, so that wrong credentials and bad
 * bodies are counted too, then the access rules, then the JSON body, so that a caller refused
 * by either costs no parsing.
 */
/** Lets every request through, without a promise. */
const NO_LIMIT: CanActivate = { canActivate: () => true };

@Module({
  imports: [
    ConversationStoreModule,
    ThrottlerModule.forRootAsync({
      imports: [ConversationStoreModule],
      inject: [RateLimitSettings, RateLimitStore],
      useFactory: (limits: RateLimitSettings, rateLimits: RateLimitStore) => ({
        // The limit itself is chosen per caller by RateLimitGuard.
        throttlers: [{ ttl: limits.windowMs, limit: limits.perClient }],
        storage: new SharedThrottlerStorage(rateLimits),
      }),
    }),
  ],
  providers: [
    AccessService,
    JsonBodyParser,
    RateLimitGuard,
    // A server where no limit applies gets no rate-limit guard at all: nothing to await.
    {
      provide: APP_GUARD,
      inject: [RateLimitGuard],
      useFactory: (guard: RateLimitGuard): CanActivate => (guard.active ? guard : NO_LIMIT),
    },
    { provide: APP_GUARD, useClass: AccessGuard },
    { provide: APP_GUARD, useClass: JsonBodyGuard },
  ],
  exports: [AccessService],
})
export class AccessModule {}
