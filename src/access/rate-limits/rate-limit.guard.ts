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
import type { Socket } from 'node:net';
import { problem } from '../../common/problem.catalogue';
import { HttpSettings, RateLimitSettings } from '../../config/app.settings';
import {
  AccessService,
  ANONYMOUS_TOKENS_PER_ADDRESS,
  anonymousTokensOf,
  callerOf,
  Principal,
} from '../access.service';
import { SharedThrottlerStorage, ThrottlerStorageRecord } from './shared-throttler.storage';

/** The prefix of every metadata key @nestjs/throttler's decorators set ("THROTTLER:SKIP", ...). */
const THROTTLER_METADATA = 'THROTTLER:';

/** A throttler that applies as it is (see RateLimitGuard.plainThrottler), worked out once. */
interface PlainThrottler {
  name: string;
  ttl: number;
  blockDuration: number;
  /** The header names ThrottlerGuard sets, or null when it sets none. */
  headers: { limit: string; remaining: string; reset: string; retryAfter: string } | null;
}

/**
 * @nestjs/throttler's guard, counting each API key, each customer token and each client IP
 * (for everyone else) against one budget across all routes, with the IETF `RateLimit-*`
 * headers and a problem+json 429. An anonymous customer token is also counted against its
 * address's share (anonymousTokensOf).
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
  private readonly plans = new WeakMap<object, PlainThrottler | null>();
  /** The storage, when it can hand out reserved hits at once (SharedThrottlerStorage.take). */
  private readonly shared: SharedThrottlerStorage | null;
  /** Per connection, its client's address (see ipOf). */
  private readonly connectionIps = new WeakMap<Socket, string>();
  private readonly trustProxy: HttpSettings['trustProxy'];

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    private readonly access: AccessService,
    private readonly limits: RateLimitSettings,
    http: HttpSettings,
  ) {
    super(options, storage, reflector);
    this.trustProxy = http.trustProxy;
    this.shared = storage instanceof SharedThrottlerStorage ? storage : null;
    // Without API_KEYS every caller is counted by address, so only RATE_LIMIT_MAX can apply.
    this.active = limits.perClient > 0 || (access.enabled && limits.perApiKey > 0);
  }

  /** With no limit that applies, nothing is counted and no store call is made. */
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.active) {
      return true;
    }
    const plan = this.plainThrottler(context.getHandler(), context.getClass());
    // A route with throttler decorators (@SkipThrottle, @Throttle) takes the library's path.
    return plan ? this.countPlain(context, plan) : super.canActivate(context);
  }

  /**
   * ThrottlerGuard.handleRequest for a plain throttler (see plainThrottler), with this guard's
   * own tracker and key and with what the library works out per request worked out once: the
   * same count, the same headers, the same refusal. Without a wait when it can: in open mode
   * the principal is known at once, and a hit from what this process has reserved ahead
   * (SharedThrottlerStorage.take) needs no store call.
   */
  private countPlain(context: ExecutionContext, plan: PlainThrottler): boolean | Promise<boolean> {
    const req = context.switchToHttp().getRequest<Request>();
    const known = this.access.openPrincipal();
    return known
      ? this.countFor(context, plan, req, known)
      : this.access
          .principal(req)
          .then((principal) => this.countFor(context, plan, req, principal));
  }

  private countFor(
    context: ExecutionContext,
    plan: PlainThrottler,
    req: Request,
    principal: Principal,
  ): boolean | Promise<boolean> {
    const limit = this.limitFor(principal);
    // 0 is "no limit" for this kind of caller.
    if (limit <= 0) {
      return true;
    }
    const ip = this.ipOf(req);
    const tracker = callerOf(principal, ip);
    const shared = anonymousTokensOf(principal, ip);
    if (shared !== null) {
      return this.countBoth(context, plan, limit, tracker, shared);
    }
    const key = this.generateKey(context, tracker, plan.name);
    const hit = this.hit(plan, limit, key);
    return hit instanceof Promise
      ? hit.then((count) => this.counted(context, plan, limit, key, tracker, count))
      : this.counted(context, plan, limit, key, tracker, hit);
  }

  /**
   * One hit against `key`: from what this process reserved ahead when it can
   * (SharedThrottlerStorage.take), else counted in the store.
   */
  private hit(
    plan: PlainThrottler,
    limit: number,
    key: string,
  ): ThrottlerStorageRecord | Promise<ThrottlerStorageRecord> {
    return (
      this.shared?.take(key) ??
      this.storageService.increment(key, plan.ttl, limit, plan.blockDuration, plan.name)
    );
  }

  /**
   * An anonymous customer token's request: counted against the token's own budget and against
   * its address's share of all anonymous tokens (anonymousTokensOf), both at once (in cluster
   * mode they travel in one IPC batch). Refused when either refuses; otherwise the headers
   * tell of whichever has less left.
   */
  private async countBoth(
    context: ExecutionContext,
    plan: PlainThrottler,
    limit: number,
    tracker: string,
    sharedTracker: string,
  ): Promise<boolean> {
    const cap = limit * ANONYMOUS_TOKENS_PER_ADDRESS;
    const key = this.generateKey(context, tracker, plan.name);
    const sharedKey = this.generateKey(context, sharedTracker, plan.name);
    const [own, shared] = await Promise.all([
      this.hit(plan, limit, key),
      this.hit(plan, cap, sharedKey),
    ]);
    const sharedFirst =
      shared.isBlocked || (!own.isBlocked && cap - shared.totalHits < limit - own.totalHits);
    return sharedFirst
      ? this.counted(context, plan, cap, sharedKey, sharedTracker, shared)
      : this.counted(context, plan, limit, key, tracker, own);
  }

  /** What ThrottlerGuard does with a count: the headers, or the refusal. */
  private counted(
    context: ExecutionContext,
    plan: PlainThrottler,
    limit: number,
    key: string,
    tracker: string,
    { totalHits, timeToExpire, isBlocked, timeToBlockExpire }: ThrottlerStorageRecord,
  ): boolean | Promise<boolean> {
    const res = context.switchToHttp().getResponse<Response>();
    if (isBlocked) {
      if (plan.headers) {
        res.setHeader(plan.headers.retryAfter, String(timeToBlockExpire));
      }
      return this.throwThrottlingException(context, {
        limit,
        ttl: plan.ttl,
        key,
        tracker,
        totalHits,
        timeToExpire,
        isBlocked,
        timeToBlockExpire,
      }).then(() => true);
    }
    if (plan.headers) {
      res.setHeader(plan.headers.limit, String(limit));
      res.setHeader(plan.headers.remaining, String(Math.max(0, limit - totalHits)));
      res.setHeader(plan.headers.reset, String(timeToExpire));
    }
    return true;
  }

  /**
   * What ThrottlerGuard.canActivate would work out for a route, decided once per route: the
   * one throttler, when the route and its controller carry no throttler metadata and its
   * options are plain numbers with no skipIf. Otherwise null, and the library decides per
   * request as usual.
   */
  private plainThrottler(handler: object, controller: object): PlainThrottler | null {
    let plan = this.plans.get(handler);
    if (plan === undefined) {
      const decorated = [handler, controller].some((target) =>
        Reflect.getMetadataKeys(target).some(
          (key) => typeof key === 'string' && key.startsWith(THROTTLER_METADATA),
        ),
      );
      const [only, ...others] = this.throttlers;
      const plain =
        !decorated &&
        only &&
        others.length === 0 &&
        !only.skipIf &&
        !this.commonOptions.skipIf &&
        !only.getTracker &&
        !only.generateKey &&
        !Array.isArray(only.ignoreUserAgents ?? this.commonOptions.ignoreUserAgents) &&
        typeof only.limit === 'number' &&
        typeof only.ttl === 'number' &&
        (only.blockDuration === undefined || typeof only.blockDuration === 'number');
      plan = plain ? this.planOf(only) : null;
      this.plans.set(handler, plan);
    }
    return plan;
  }

  /** A plain throttler's values and header names, as ThrottlerGuard.handleRequest makes them. */
  private planOf(throttler: ThrottlerOptions): PlainThrottler {
    const name = throttler.name ?? 'default';
    const suffix = name === 'default' ? '' : `-${name}`;
    const setHeaders = throttler.setHeaders ?? this.commonOptions.setHeaders ?? true;
    return {
      name,
      ttl: throttler.ttl as number,
      blockDuration: (throttler.blockDuration ?? throttler.ttl) as number,
      headers: setHeaders
        ? {
            limit: `${this.headerPrefix}-Limit${suffix}`,
            remaining: `${this.headerPrefix}-Remaining${suffix}`,
            reset: `${this.headerPrefix}-Reset${suffix}`,
            retryAfter: `Retry-After${suffix}`,
          }
        : null,
    };
  }

  /**
   * The limit depends on who calls: RATE_LIMIT_API_KEY_MAX for a key, else RATE_LIMIT_MAX.
   * (The library's path, for decorated routes; countPlain does the same for the others.)
   */
  protected override async handleRequest(request: ThrottlerRequest): Promise<boolean> {
    const req = request.context.switchToHttp().getRequest<Request>();
    const principal = await this.access.principal(req);
    const limit = this.limitFor(principal);
    // 0 is "no limit" for this kind of caller.
    if (limit <= 0) {
      return true;
    }
    const shared = anonymousTokensOf(principal, this.ipOf(req));
    if (shared !== null) {
      // The address's share of anonymous tokens first (see countBoth); the token's own count
      // then sets the headers.
      await super.handleRequest({
        ...request,
        limit: limit * ANONYMOUS_TOKENS_PER_ADDRESS,
        getTracker: () => shared,
      });
    }
    return super.handleRequest({ ...request, limit });
  }

  /** RATE_LIMIT_API_KEY_MAX for an API key, RATE_LIMIT_MAX for everyone else; 0: none. */
  private limitFor(principal: Principal): number {
    return principal.kind === 'api-key' ? this.limits.perApiKey : this.limits.perClient;
  }

  /** Whose budget a request is counted against. */
  protected override async getTracker(req: Request): Promise<string> {
    return this.trackerOf(await this.access.principal(req), req);
  }

  private trackerOf(principal: Principal, req: Request): string {
    return callerOf(principal, this.ipOf(req));
  }

  /**
   * The client's address as the throttler counts it. Without TRUST_PROXY a request's address
   * is its connection's (req.ip is the socket's address then), so it is worked out once per
   * connection rather than once per request.
   */
  private ipOf(req: Request): string {
    if (this.trustProxy !== false) {
      return normalizeIp(req.ip ?? '', this.ipv6SubnetPrefix);
    }
    let ip = this.connectionIps.get(req.socket);
    if (ip === undefined) {
      ip = normalizeIp(req.ip ?? '', this.ipv6SubnetPrefix);
      this.connectionIps.set(req.socket, ip);
    }
    return ip;
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
