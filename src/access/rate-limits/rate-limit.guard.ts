import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerLimitDetail,
  ThrottlerModuleOptions,
  ThrottlerRequest,
  ThrottlerStorage,
} from '@nestjs/throttler';
import type { Request, Response } from 'express';
import type { Socket } from 'node:net';
import { problem } from '../../common/errors/problem.catalogue';
import { HttpSettings, RateLimitSettings } from '../../config/app.settings';
import {
  FastPathThrottlerGuard,
  PlainThrottler,
  ThrottlerStorageRecord,
} from '../../http/fast-path/throttler-guard';
import {
  AccessService,
  ANONYMOUS_TOKENS_PER_ADDRESS,
  anonymousTokensOf,
  callerOf,
  clientAddress,
  Principal,
} from '../access.service';
import { SharedThrottlerStorage } from './shared-throttler.storage';

/**
 * @nestjs/throttler's guard, counting each API key, each customer token and each client IP
 * (for everyone else) against one budget across all routes, with the IETF `RateLimit-*`
 * headers and a problem+json 429. An anonymous customer token is also counted against its
 * address's share (anonymousTokensOf). Customised through the library's hooks (handleRequest,
 * getTracker, generateKey, throwThrottlingException); a route without throttler decorators is
 * counted on the fast path instead (countPlain, see http/fast-path/throttler-guard.ts), since
 * the library's own path costs a request far more (docs/performance.md).
 */
@Injectable()
export class RateLimitGuard extends FastPathThrottlerGuard {
  protected override headerPrefix = 'RateLimit';
  /**
   * Whether any caller can be limited: decided once, so an unlimited server pays nothing (the
   * guard is not even installed then, see AccessModule).
   */
  readonly active: boolean;
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

  /**
   * handleRequest below, on the fast path. Without a wait when it can: in open mode the
   * principal is known at once, and a hit from what this process has reserved ahead (see hit)
   * needs no store call.
   */
  protected override countPlain(
    context: ExecutionContext,
    plan: PlainThrottler,
  ): boolean | Promise<boolean> {
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
    return shared === null
      ? this.countOne(context, plan, limit, tracker)
      : this.countBoth(context, plan, limit, tracker, shared);
  }

  /**
   * One hit against `key`: from what this process reserved ahead when it can
   * (SharedThrottlerStorage.take), else counted in the store.
   */
  protected override hit(
    plan: PlainThrottler,
    limit: number,
    key: string,
  ): ThrottlerStorageRecord | Promise<ThrottlerStorageRecord> {
    return this.shared?.take(key) ?? super.hit(plan, limit, key);
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
      return clientAddress(req);
    }
    let ip = this.connectionIps.get(req.socket);
    if (ip === undefined) {
      ip = clientAddress(req);
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
