import { CanActivate, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { JsonBodyGuard } from '../http/json-body.guard';
import { JsonBodyParser } from '../http/json-body.parser';
import { AccessGuard } from './access.guard';
import { AccessService } from './access.service';
import { RateLimitGuard } from './rate-limits/rate-limit.guard';
import { RateLimitsModule } from './rate-limits/rate-limits.module';

/** Lets every request through, without a promise. */
const NO_LIMIT: CanActivate = { canActivate: () => true };

/**
 * Access control (API keys, customer tokens) and rate limits, as global guards in this order
 * (the order of the providers below): the rate limit first, so that wrong credentials and bad
 * bodies are counted too, then the access rules, then the JSON body, so that a caller refused
 * by either costs no parsing. The customer tokens' hashes come from the conversation store
 * (CustomerTokenHashes, which its global module provides).
 */
@Module({
  imports: [RateLimitsModule],
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
