// Fast path: mirrors @nestjs/throttler@6.7.1 ThrottlerGuard.handleRequest
// (dist/throttler.guard.js). Held equal by src/http/fast-path/throttler-guard.spec.ts.
import { ExecutionContext } from '@nestjs/common';
import { ThrottlerGuard, ThrottlerOptions, ThrottlerStorage } from '@nestjs/throttler';
import type { Response } from 'express';

/** What ThrottlerStorage.increment gives (the library does not export its type). */
export type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/** The prefix of every metadata key @nestjs/throttler's decorators set ("THROTTLER:SKIP", ...). */
const THROTTLER_METADATA = 'THROTTLER:';

/** A throttler that applies to a route as it is (see plainThrottler), worked out once. */
export interface PlainThrottler {
  name: string;
  limit: number;
  ttl: number;
  blockDuration: number;
  /** The header names ThrottlerGuard sets, or null when it sets none. */
  headers: { limit: string; remaining: string; reset: string; retryAfter: string } | null;
}

/**
 * ThrottlerGuard with a short path for a plain route: one whose throttling needs nothing
 * decided per request (no throttler decorators, one throttler with plain numbers, no skipIf,
 * no tracker or key function of its own, no ignored user agents). For such a route what
 * canActivate and handleRequest work out per request is worked out once, and the subclass
 * counts the request (countPlain) with countOne or, for counts of its own, hit and counted:
 * the same storage call, headers and refusal as handleRequest, without its awaits when the
 * storage answers at once. Every other route takes the library's path.
 */
export abstract class FastPathThrottlerGuard extends ThrottlerGuard {
  /** Per route handler: its plain throttler, or null. */
  private readonly plans = new WeakMap<object, PlainThrottler | null>();

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const plan = this.plainThrottler(context.getHandler(), context.getClass());
    return plan ? this.countPlain(context, plan) : super.canActivate(context);
  }

  /** Counts a request to a plain route, as the subclass's handleRequest would. */
  protected abstract countPlain(
    context: ExecutionContext,
    plan: PlainThrottler,
  ): boolean | Promise<boolean>;

  /** handleRequest for one tracker and limit: its key, one hit, the headers or the refusal. */
  protected countOne(
    context: ExecutionContext,
    plan: PlainThrottler,
    limit: number,
    tracker: string,
  ): boolean | Promise<boolean> {
    const key = this.generateKey(context, tracker, plan.name);
    const hit = this.hit(plan, limit, key);
    return hit instanceof Promise
      ? hit.then((count) => this.counted(context, plan, limit, key, tracker, count))
      : this.counted(context, plan, limit, key, tracker, hit);
  }

  /** One hit against `key` in the storage; a subclass may answer without a wait. */
  protected hit(
    plan: PlainThrottler,
    limit: number,
    key: string,
  ): ThrottlerStorageRecord | Promise<ThrottlerStorageRecord> {
    return this.storageService.increment(key, plan.ttl, limit, plan.blockDuration, plan.name);
  }

  /** What handleRequest does with a count: the headers, or the refusal. */
  protected counted(
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
      }).then(() => this.limitHeaders(res, plan, limit, totalHits, timeToExpire));
    }
    return this.limitHeaders(res, plan, limit, totalHits, timeToExpire);
  }

  private limitHeaders(
    res: Response,
    plan: PlainThrottler,
    limit: number,
    totalHits: number,
    timeToExpire: number,
  ): true {
    if (plan.headers) {
      res.setHeader(plan.headers.limit, String(limit));
      res.setHeader(plan.headers.remaining, String(Math.max(0, limit - totalHits)));
      res.setHeader(plan.headers.reset, String(timeToExpire));
    }
    return true;
  }

  /**
   * What canActivate would work out for a route, decided once per route: its one throttler,
   * when the route qualifies (see the class); otherwise null, and the library decides per
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
        // The library's shouldSkip skips nothing; a subclass's own decides per request.
        this.shouldSkip === FastPathThrottlerGuard.prototype.shouldSkip &&
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

  /** A plain throttler's values and header names, as handleRequest makes them. */
  private planOf(throttler: ThrottlerOptions): PlainThrottler {
    const name = throttler.name ?? 'default';
    const suffix = name === 'default' ? '' : `-${name}`;
    const setHeaders = throttler.setHeaders ?? this.commonOptions.setHeaders ?? true;
    return {
      name,
      limit: throttler.limit as number,
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
}
