import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerGuard,
  ThrottlerLimitDetail,
  ThrottlerModuleOptions,
  ThrottlerOptions,
  ThrottlerRequest,
  ThrottlerStorage,
  normalizeIp,
} from '@nestjs/throttler';
import type { Request, Response } from 'express';
import { problem } from '../common/problem.catalogue';
import { RateLimitSettings } from '../config/app.settings';
import { AccessService, callerOf } from './access.service';

/** The prefix of every metadata key @nestjs/throttler's decorators set ("THROTTLER:SKIP", ...). */
const THROTTLER_METADATA = 'THROTTLER:';

/**
 * @nestjs/throttler's guard, counting each API key, each customer token and each client IP
 * (for everyone else) against one budget across all routes, with the IETF `RateLimit-*`
 * headers and a problem+json 429.
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  protected override headerPrefix = 'RateLimit';
  /**
   * Whether any caller can be limited: decided once, so an unlimited server pays nothing (the
   * guard is not even installed then, see AccessModule).
   */
  readonly active: boolean;
  /** Per route handler: its plain throttler, or null (see plainThrottler). */
  private readonly plans = new WeakMap<object, ThrottlerOptions | null>();

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    private readonly access: AccessService,
    private readonly limits: RateLimitSettings,
  ) {
    super(options, storage, reflector);
    // Without API_KEYS every caller is counted by address, so only RATE_LIMIT_MAX can apply.
    this.active = limits.perClient > 0 || (access.enabled && limits.perApiKey > 0);
  }

  /** With no limit that applies, nothing is counted and no store call is made. */
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.active) {
      return true;
    }
    const throttler = this.plainThrottler(context.getHandler(), context.getClass());
    // A route with throttler decorators (@SkipThrottle, @Throttle) takes the library's path.
    return throttler
      ? this.handleRequest({
          context,
          throttler,
          limit: throttler.limit as number,
          ttl: throttler.ttl as number,
          blockDuration: (throttler.blockDuration ?? throttler.ttl) as number,
          getTracker: throttler.getTracker ?? this.commonOptions.getTracker!,
          generateKey: throttler.generateKey ?? this.commonOptions.generateKey!,
        })
      : super.canActivate(context);
  }

  /**
   * What ThrottlerGuard.canActivate would work out for a route, decided once per route: the
   * one throttler, when the route and its controller carry no throttler metadata and its
   * options are plain numbers with no skipIf. Otherwise null, and the library decides per
   * request as usual.
   */
  private plainThrottler(handler: object, controller: object): ThrottlerOptions | null {
    let plan = this.plans.get(handler);
    if (plan === undefined) {
      const decorated = [handler, controller].some((target) =>
        Reflect.getMetadataKeys(target).some(
          (key) => typeof key === 'string' && key.startsWith(THROTTLER_METADATA),
        ),
      );
      const [only, ...others] = this.throttlers;
      plan =
        !decorated &&
        only &&
        others.length === 0 &&
        !only.skipIf &&
        !this.commonOptions.skipIf &&
        typeof only.limit === 'number' &&
        typeof only.ttl === 'number' &&
        (only.blockDuration === undefined || typeof only.blockDuration === 'number')
          ? only
          : null;
      this.plans.set(handler, plan);
    }
    return plan;
  }

  /** The limit depends on who calls: RATE_LIMIT_API_KEY_MAX for a key, else RATE_LIMIT_MAX. */
  protected override async handleRequest(request: ThrottlerRequest): Promise<boolean> {
    const principal = await this.access.principal(
      request.context.switchToHttp().getRequest<Request>(),
    );
    const limit = principal.kind === 'api-key' ? this.limits.perApiKey : this.limits.perClient;
    // 0 is "no limit" for this kind of caller.
    return limit <= 0 ? true : super.handleRequest({ ...request, limit });
  }

  /** Whose budget a request is counted against. */
  protected override async getTracker(req: Request): Promise<string> {
    return callerOf(
      await this.access.principal(req),
      normalizeIp(req.ip ?? '', this.ipv6SubnetPrefix),
    );
  }

  /** One budget per caller for the whole API, not one per route. */
  protected override generateKey(
    _context: ExecutionContext,
    trackerKey: string,
    name: string,
  ): string {
    return `${name}:${trackerKey}`;
  }

  protected override async throwThrottlingException(
    context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    const res = context.switchToHttp().getResponse<Response>();
    const retryAfter = String(Math.max(1, detail.timeToBlockExpire));
    res.setHeader('RateLimit-Limit', detail.limit);
    res.setHeader('RateLimit-Remaining', 0);
    res.setHeader('RateLimit-Reset', retryAfter);
    throw problem('rate_limited', { limit: detail.limit, windowMs: detail.ttl, retryAfter });
  }
}
