import { ExecutionContext, HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerGuard,
  ThrottlerLimitDetail,
  ThrottlerModuleOptions,
  ThrottlerRequest,
  ThrottlerStorage,
  normalizeIp,
} from '@nestjs/throttler';
import type { Request, Response } from 'express';
import { ProblemException } from '../common/problem';
import { AppConfig, appConfig, trustProxySetting } from '../config/app.config';
import { AccessService, callerOf } from './access.service';

/**
 * @nestjs/throttler's guard, counting each API key, each customer token and each client IP
 * (for everyone else) against one budget across all routes, with the IETF `RateLimit-*`
 * headers and a problem+json 429.
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  protected override headerPrefix = 'RateLimit';
  protected override logger = new Logger(RateLimitGuard.name);
  /** Whether any caller can be limited: decided once, so an unlimited server pays nothing. */
  private readonly active: boolean;
  /** Whether to look out for a proxy nobody told us about (TRUST_PROXY unset). */
  private watchForProxy: boolean;

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    private readonly access: AccessService,
    @Inject(appConfig.KEY) private readonly config: AppConfig,
  ) {
    super(options, storage, reflector);
    // Without API_KEYS every caller is counted by address, so only RATE_LIMIT_MAX can apply.
    this.active =
      config.RATE_LIMIT_MAX > 0 || (access.enabled && config.RATE_LIMIT_API_KEY_MAX > 0);
    this.watchForProxy = trustProxySetting(config.TRUST_PROXY) === false;
  }

  /** With no limit that applies, nothing is counted and no store call is made. */
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    return this.active ? super.canActivate(context) : true;
  }

  /** The limit depends on who calls: RATE_LIMIT_API_KEY_MAX for a key, else RATE_LIMIT_MAX. */
  protected override async handleRequest(request: ThrottlerRequest): Promise<boolean> {
    const principal = await this.access.principal(
      request.context.switchToHttp().getRequest<Request>(),
    );
    const limit =
      principal.kind === 'api-key'
        ? this.config.RATE_LIMIT_API_KEY_MAX
        : this.config.RATE_LIMIT_MAX;
    // 0 is "no limit" for this kind of caller.
    return limit <= 0 ? true : super.handleRequest({ ...request, limit });
  }

  /** Whose budget a request is counted against. */
  protected override async getTracker(req: Request): Promise<string> {
    const principal = await this.access.principal(req);
    const byAddress = principal.kind !== 'api-key' && principal.kind !== 'customer';
    if (byAddress && this.watchForProxy && req.headers['x-forwarded-for'] !== undefined) {
      this.warnUntrustedProxy();
    }
    return callerOf(principal, normalizeIp(req.ip ?? '', this.ipv6SubnetPrefix));
  }

  /** Once per process: what express-rate-limit's validation checks say in the same case. */
  private warnUntrustedProxy(): void {
    this.watchForProxy = false;
    this.logger.warn(
      'A request came with X-Forwarded-For but TRUST_PROXY is not set: the forwarded address is ' +
        "ignored, so every client behind this proxy is counted as the proxy's one address and " +
        'shares one rate limit. Set TRUST_PROXY (a hop count, or the proxy addresses) to count ' +
        'each client on its own.',
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
    throw new ProblemException(
      HttpStatus.TOO_MANY_REQUESTS,
      'rate_limited',
      `Too many requests: at most ${detail.limit} in ${detail.ttl / 1000} s. Retry after ${retryAfter} s.`,
      undefined,
      { 'Retry-After': retryAfter },
    );
  }
}
